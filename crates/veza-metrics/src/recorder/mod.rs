//! [`Recorder`]: the `metrics` facade's recorder, with storage of our own.
//!
//! Counters and histograms count in per-thread slots ([`shard`]): an increment is a plain load
//! and store on memory only its thread writes, summed over the threads at scrape. Histograms
//! are bucketed when recorded (one search among the bounds), so there is no sample queue to
//! drain and a scrape sees every value recorded before it. Gauges are one atomic each. The
//! text is written straight from the series, each of which keeps its label text rendered once
//! at registration.

mod shard;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};

use crate::exemplar::{self, Exemplar};
use crate::family::{escape_help, escape_label_into, push_value};
use shard::{Shards, Slots};

/// The exposition format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Prometheus,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`): counter families
    /// named without `_total`, and a final `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Histogram bounds and their `le` label text.
#[derive(Debug)]
pub(crate) struct Buckets {
    bounds: Box<[f64]>,
    le: Box<[String]>,
}

impl Buckets {
    pub(crate) fn new(bounds: &[f64]) -> Arc<Buckets> {
        let le = bounds
            .iter()
            .map(|b| {
                let mut s = String::new();
                push_value(&mut s, *b);
                s
            })
            .collect();
        Arc::new(Buckets {
            bounds: bounds.into(),
            le,
        })
    }
}

/// How histograms get their buckets: by full name first, then by suffix, then the default.
pub(crate) struct BucketRules {
    pub(crate) full: Vec<(String, Arc<Buckets>)>,
    pub(crate) suffix: Vec<(String, Arc<Buckets>)>,
    pub(crate) default: Arc<Buckets>,
}

impl BucketRules {
    fn for_name(&self, name: &str) -> Arc<Buckets> {
        let full = self.full.iter().find(|(n, _)| n == name);
        let suffix = || self.suffix.iter().find(|(s, _)| name.ends_with(s.as_str()));
        let rule: Option<&Arc<Buckets>> = full.or_else(suffix).map(|(_, b)| b);
        Arc::clone(rule.unwrap_or(&self.default))
    }
}

struct CounterSeries {
    slots: Slots,
    /// The highest `absolute` value set; the counter reads as at least this.
    absolute: AtomicU64,
}

impl CounterFn for CounterSeries {
    #[inline]
    fn increment(&self, value: u64) {
        self.slots.add(0, value);
    }

    fn absolute(&self, value: u64) {
        self.absolute.fetch_max(value, Relaxed);
    }
}

impl CounterSeries {
    fn value(&self, shards: &Shards) -> u64 {
        self.slots.read(0, shards).max(self.absolute.load(Relaxed))
    }
}

struct GaugeSeries(AtomicU64);

impl GaugeFn for GaugeSeries {
    fn increment(&self, value: f64) {
        let _ = self.0.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    fn decrement(&self, value: f64) {
        self.increment(-value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Relaxed);
    }
}

/// Slots: one count per bucket (the last is `+Inf`), then the sum.
struct HistogramSeries {
    buckets: Arc<Buckets>,
    slots: Slots,
    /// Each bucket's latest exemplar, made on the first one.
    exemplars: OnceLock<Box<[Mutex<Option<Exemplar>>]>>,
}

impl HistogramSeries {
    #[cold]
    fn keep_exemplar(&self, bucket: usize, exemplar: Exemplar) {
        let all = self.exemplars.get_or_init(|| {
            (0..=self.buckets.bounds.len())
                .map(|_| Mutex::new(None))
                .collect()
        });
        *all[bucket].lock().unwrap_or_else(PoisonError::into_inner) = Some(exemplar);
    }

    fn exemplar(&self, bucket: usize) -> Option<Exemplar> {
        let all = self.exemplars.get()?;
        all[bucket]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The bucket of `value` among sorted `bounds` (the first whose bound is at least `value`):
/// how many bounds are below it. Up to 64 bounds they are counted: the compares do not wait
/// on each other (the compiler turns them into vector compares), where a binary search waits
/// on each step's compare before the next step's load.
#[inline]
fn bucket_of(bounds: &[f64], value: f64) -> usize {
    if bounds.len() <= 64 {
        bounds.iter().map(|b| usize::from(*b < value)).sum()
    } else {
        bounds.partition_point(|b| *b < value)
    }
}

impl HistogramFn for HistogramSeries {
    /// A NaN is not a measurement and is not recorded (it would make the sum NaN for good).
    #[inline]
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    #[inline]
    fn record_many(&self, value: f64, count: usize) {
        if value.is_nan() {
            return;
        }
        let bucket = bucket_of(&self.buckets.bounds, value);
        let sum = self.buckets.bounds.len() + 1;
        let n = u64::try_from(count).unwrap_or(u64::MAX);
        // `count as f64` is exact up to 2^53 observations at once.
        self.slots
            .add_with_sum(bucket, n, sum, value * count as f64);
        if let Some(exemplar) = exemplar::current(value) {
            self.keep_exemplar(bucket, exemplar);
        }
    }
}

#[derive(Clone)]
enum Series {
    Counter(Arc<CounterSeries>),
    Gauge(Arc<GaugeSeries>),
    Histogram(Arc<HistogramSeries>),
}

impl Series {
    /// Whether a handle outside the registry holds it (the registry holds two: its family's
    /// entry and the by-key index).
    fn held_elsewhere(&self) -> bool {
        const REGISTRY: usize = 2;
        let count = match self {
            Series::Counter(s) => Arc::strong_count(s),
            Series::Gauge(s) => Arc::strong_count(s),
            Series::Histogram(s) => Arc::strong_count(s),
        };
        count > REGISTRY
    }

    /// What changes when the series is recorded into (for idle expiry).
    fn fingerprint(&self, shards: &Shards) -> (u64, u64) {
        match self {
            Series::Counter(s) => (s.value(shards), 0),
            Series::Gauge(s) => (s.0.load(Relaxed), 0),
            Series::Histogram(s) => {
                let n = s.buckets.bounds.len();
                let count = (0..=n).fold(0u64, |c, i| c.saturating_add(s.slots.read(i, shards)));
                (count, s.slots.read_f64(n + 1, shards).to_bits())
            }
        }
    }
}

struct Entry {
    key: Key,
    series: Series,
    /// For idle expiry: the last fingerprint seen and since when.
    seen: Option<((u64, u64), Instant)>,
}

struct FamilyEntry {
    kind: Kind,
    /// By label text (`{a="1",b="2"}` with the global labels, or empty), so a scrape is
    /// written in order without sorting.
    series: BTreeMap<String, Entry>,
}

#[derive(Default)]
struct Maps {
    /// For registration: the series of a key, whatever its family.
    by_key: HashMap<Key, Series>,
    families: BTreeMap<String, FamilyEntry>,
}

/// The storage behind a [`Recorder`], shared with the [`Metrics`](crate::Metrics) that
/// renders it.
pub(crate) struct Registry {
    maps: RwLock<Maps>,
    /// Help texts by metric name.
    descriptions: RwLock<HashMap<String, SharedString>>,
    /// `name="value"` pairs added to every series.
    global: Vec<(String, String)>,
    buckets: BucketRules,
    idle_timeout: Option<Duration>,
}

impl Registry {
    pub(crate) fn new(
        global: Vec<(String, String)>,
        buckets: BucketRules,
        idle_timeout: Option<Duration>,
    ) -> Registry {
        Registry {
            maps: RwLock::new(Maps::default()),
            descriptions: RwLock::new(HashMap::new()),
            global,
            buckets,
            idle_timeout,
        }
    }

    fn describe(&self, name: KeyName, description: SharedString) {
        let name = sanitize_name(name.as_str());
        self.descriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, description);
    }

    fn register(&self, key: &Key, kind: Kind) -> Option<Series> {
        let known = |maps: &Maps| {
            let series = maps.by_key.get(key)?;
            Some((kind_of(series) == kind).then(|| series.clone()))
        };
        if let Some(found) = known(&self.maps.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = known(&maps) {
            return found;
        }
        let name = sanitize_name(key.name());
        if maps.families.get(&name).is_some_and(|f| f.kind != kind) {
            // One name, one type: Prometheus refuses a scrape that declares two.
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "veza_metrics::recorder",
                metric = %name,
                "a metric registered as a {} was already a {}; this handle records nothing",
                kind.as_str(),
                maps.families[&name].kind.as_str()
            );
            return None;
        }
        let series = match kind {
            Kind::Counter => Series::Counter(Arc::new(CounterSeries {
                slots: Slots::new(1),
                absolute: AtomicU64::new(0),
            })),
            Kind::Gauge => Series::Gauge(Arc::new(GaugeSeries(AtomicU64::new(0f64.to_bits())))),
            Kind::Histogram => {
                let buckets = self.buckets.for_name(&name);
                let slots = Slots::new(buckets.bounds.len() + 2);
                Series::Histogram(Arc::new(HistogramSeries {
                    buckets,
                    slots,
                    exemplars: OnceLock::new(),
                }))
            }
        };
        let labels = self.label_text(key);
        let family = maps.families.entry(name).or_insert_with(|| FamilyEntry {
            kind,
            series: BTreeMap::new(),
        });
        family.series.insert(
            labels,
            Entry {
                key: key.clone(),
                series: series.clone(),
                seen: None,
            },
        );
        maps.by_key.insert(key.clone(), series.clone());
        Some(series)
    }

    /// `{k="v",...}` for the key's labels then the global ones (a global label the series
    /// sets itself is left out), or empty.
    fn label_text(&self, key: &Key) -> String {
        let mut text = String::new();
        let mut push = |name: &str, value: &str| {
            text.push(if text.is_empty() { '{' } else { ',' });
            text.push_str(name);
            text.push_str("=\"");
            escape_label_into(&mut text, value);
            text.push('"');
        };
        let own: Vec<(String, &str)> = key
            .labels()
            .map(|l| (sanitize_label(l.key()), l.value()))
            .collect();
        for (name, value) in &own {
            push(name, value);
        }
        for (name, value) in &self.global {
            if !own.iter().any(|(n, _)| n == name) {
                push(name, value);
            }
        }
        if !text.is_empty() {
            text.push('}');
        }
        text
    }

    /// Appends every series in `format` (without OpenMetrics' `# EOF`, which the caller writes
    /// after the collectors' families).
    pub(crate) fn render(&self, format: Format, out: &mut String) {
        let shards = Shards::now();
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let descriptions = self
            .descriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut int = itoa::Buffer::new();
        for (name, family) in &maps.families {
            let family_name = match (format, family.kind) {
                (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            // OpenMetrics names a counter's samples `<family>_total` whatever it was called.
            let counter_sample = match (format, family.kind) {
                (Format::OpenMetrics, Kind::Counter) => Cow::Owned(format!("{family_name}_total")),
                _ => Cow::Borrowed(name.as_str()),
            };
            if let Some(d) = descriptions.get(name) {
                write_meta(out, "HELP", family_name, &escape_help(d, format));
            }
            write_meta(out, "TYPE", family_name, family.kind.as_str());
            for (labels, entry) in &family.series {
                let labels = labels.as_str();
                match &entry.series {
                    Series::Counter(s) => {
                        out.push_str(&counter_sample);
                        out.push_str(labels);
                        out.push(' ');
                        out.push_str(int.format(s.value(&shards)));
                        out.push('\n');
                    }
                    Series::Gauge(s) => {
                        out.push_str(name);
                        out.push_str(labels);
                        out.push(' ');
                        push_value(out, f64::from_bits(s.0.load(Relaxed)));
                        out.push('\n');
                    }
                    Series::Histogram(s) => {
                        write_histogram(out, name, labels, s, &shards, format, &mut int);
                    }
                }
            }
        }
    }

    /// Drops the series nobody holds a handle to whose value has not changed for the idle
    /// timeout; they come back, from zero, when recorded again.
    pub(crate) fn expire_idle(&self, now: Instant) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        let shards = Shards::now();
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        let mut gone = Vec::new();
        for family in maps.families.values_mut() {
            family.series.retain(|_, entry| {
                if entry.series.held_elsewhere() {
                    entry.seen = None;
                    return true;
                }
                let print = entry.series.fingerprint(&shards);
                match entry.seen {
                    Some((last, since)) if last == print => {
                        let idle = now.saturating_duration_since(since) >= timeout;
                        if idle {
                            gone.push(entry.key.clone());
                        }
                        !idle
                    }
                    _ => {
                        entry.seen = Some((print, now));
                        true
                    }
                }
            });
        }
        maps.families.retain(|_, family| !family.series.is_empty());
        for key in gone {
            maps.by_key.remove(&key);
        }
    }
}

fn kind_of(series: &Series) -> Kind {
    match series {
        Series::Counter(_) => Kind::Counter,
        Series::Gauge(_) => Kind::Gauge,
        Series::Histogram(_) => Kind::Histogram,
    }
}

fn write_meta(out: &mut String, what: &str, name: &str, text: &str) {
    out.push_str("# ");
    out.push_str(what);
    out.push(' ');
    out.push_str(name);
    out.push(' ');
    out.push_str(text);
    out.push('\n');
}

fn write_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    s: &HistogramSeries,
    shards: &Shards,
    format: Format,
    int: &mut itoa::Buffer,
) {
    let n = s.buckets.bounds.len();
    // Label text without its braces, to add `le` to it.
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or("");
    let mut cumulative = 0u64;
    for i in 0..=n {
        cumulative = cumulative.saturating_add(s.slots.read(i, shards));
        out.push_str(name);
        out.push_str("_bucket{");
        out.push_str(inner);
        if !inner.is_empty() {
            out.push(',');
        }
        out.push_str("le=\"");
        out.push_str(s.buckets.le.get(i).map_or("+Inf", String::as_str));
        out.push_str("\"} ");
        out.push_str(int.format(cumulative));
        if format == Format::OpenMetrics {
            if let Some(e) = s.exemplar(i) {
                out.push_str(" # ");
                out.push_str(&e.labels);
                out.push(' ');
                push_value(out, e.value);
                out.push(' ');
                push_value(out, e.at);
            }
        }
        out.push('\n');
    }
    out.push_str(name);
    out.push_str("_sum");
    out.push_str(labels);
    out.push(' ');
    push_value(out, s.slots.read_f64(n + 1, shards));
    out.push('\n');
    out.push_str(name);
    out.push_str("_count");
    out.push_str(labels);
    out.push(' ');
    // The count is the `+Inf` bucket, so the two always agree.
    out.push_str(int.format(cumulative));
    out.push('\n');
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: anything else becomes `_`.
fn sanitize_name(name: &str) -> String {
    name.char_indices()
        .map(|(i, c)| {
            let ok =
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit());
            if ok { c } else { '_' }
        })
        .collect()
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: anything else becomes `_`.
fn sanitize_label(name: &str) -> String {
    let mut s: String = name
        .char_indices()
        .map(|(i, c)| {
            let ok = c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit());
            if ok { c } else { '_' }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// The `metrics` recorder of veza-metrics: install it with
/// [`MetricsBuilder::install`](crate::MetricsBuilder::install), or get one uninstalled from
/// [`MetricsBuilder::build`](crate::MetricsBuilder::build) for `metrics::with_local_recorder`.
///
/// A counter or histogram handle records into the calling thread's own slots (a load and a
/// store, no atomic read-modify-write), summed at scrape; a gauge is one atomic. Registering
/// a name under a second type (a gauge named like an existing counter) gives a handle that
/// records nothing, since Prometheus refuses a scrape that declares a name twice.
#[derive(Clone)]
pub struct Recorder {
    pub(crate) registry: Arc<Registry>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let maps = self
            .registry
            .maps
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Recorder")
            .field("series", &maps.by_key.len())
            .finish()
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.registry.describe(key, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.registry.describe(key, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.registry.describe(key, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.registry.register(key, Kind::Counter) {
            Some(Series::Counter(s)) => Counter::from_arc(s),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        match self.registry.register(key, Kind::Gauge) {
            Some(Series::Gauge(s)) => Gauge::from_arc(s),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        match self.registry.register(key, Kind::Histogram) {
            Some(Series::Histogram(s)) => Histogram::from_arc(s),
            _ => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_buckets_agree_with_a_binary_search() {
        let few = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let many: Vec<f64> = (1..=200).map(|i| f64::from(i) * 0.5).collect();
        let one = [1.0];
        for bounds in [&few[..], &many[..], &one[..]] {
            let mut values = vec![f64::NEG_INFINITY, -1.0, 0.0, f64::INFINITY, f64::MAX];
            for b in bounds {
                // On a bound (it belongs to that bucket: `le`), and the floats either side of
                // it (the bounds are positive: their neighbours are one bit pattern away).
                let bits = b.to_bits();
                values.extend([*b, f64::from_bits(bits - 1), f64::from_bits(bits + 1)]);
            }
            for v in values {
                assert_eq!(
                    bucket_of(bounds, v),
                    bounds.partition_point(|b| *b < v),
                    "{v} in {} bounds",
                    bounds.len()
                );
            }
        }
        assert_eq!(bucket_of(&few, 0.01), 1);
        assert_eq!(bucket_of(&few, 0.011), 2);
        assert_eq!(bucket_of(&few, 11.0), few.len());
    }

    fn recorder(global: &[(&str, &str)], idle: Option<Duration>) -> Recorder {
        let rules = BucketRules {
            full: vec![("custom".to_owned(), Buckets::new(&[1.0, 2.0]))],
            suffix: vec![("_seconds".to_owned(), Buckets::new(&[0.1, 1.0]))],
            default: Buckets::new(&[10.0]),
        };
        let global = global
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Recorder {
            registry: Arc::new(Registry::new(global, rules, idle)),
        }
    }

    fn render(r: &Recorder, format: Format) -> String {
        let mut out = String::new();
        r.registry.render(format, &mut out);
        out
    }

    #[test]
    fn series_render_in_order_with_help_type_and_escaped_labels() {
        let r = recorder(&[("service", "api")], None);
        metrics::with_local_recorder(&r, || {
            metrics::describe_counter!("jobs_total", "Jobs\ndone.");
            metrics::counter!("jobs_total", "queue" => "b\"q").increment(2);
            metrics::counter!("jobs_total", "queue" => "a").increment(1);
            metrics::counter!("jobs_total", "queue" => "a").absolute(10);
            metrics::gauge!("depth", "service" => "own").set(-1.5);
            metrics::gauge!("bad-name").increment(3.0);
            metrics::gauge!("bad-name").decrement(0.5);
        });
        assert_eq!(
            render(&r, Format::Prometheus),
            "# TYPE bad_name gauge\n\
             bad_name{service=\"api\"} 2.5\n\
             # TYPE depth gauge\n\
             depth{service=\"own\"} -1.5\n\
             # HELP jobs_total Jobs\\ndone.\n\
             # TYPE jobs_total counter\n\
             jobs_total{queue=\"a\",service=\"api\"} 10\n\
             jobs_total{queue=\"b\\\"q\",service=\"api\"} 2\n"
        );
        let open = render(&r, Format::OpenMetrics);
        assert!(
            open.contains("# HELP jobs Jobs\\ndone.\n# TYPE jobs counter\n"),
            "{open}"
        );
        assert!(
            open.contains("\njobs_total{queue=\"a\",service=\"api\"} 10\n"),
            "{open}"
        );
    }

    #[test]
    fn histograms_bucket_at_record_and_count_equals_inf() {
        let r = recorder(&[], None);
        let (h, c) = metrics::with_local_recorder(&r, || {
            (
                metrics::histogram!("wait_seconds", "pool" => "main"),
                metrics::histogram!("custom"),
            )
        });
        for v in [0.05, 0.1, 0.5, 3.0, f64::NAN] {
            h.record(v);
        }
        c.record_many(1.5, 4);
        let text = render(&r, Format::Prometheus);
        for line in [
            "wait_seconds_bucket{pool=\"main\",le=\"0.1\"} 2\n",
            "wait_seconds_bucket{pool=\"main\",le=\"1\"} 3\n",
            "wait_seconds_bucket{pool=\"main\",le=\"+Inf\"} 4\n",
            "wait_seconds_sum{pool=\"main\"} 3.65\n",
            "wait_seconds_count{pool=\"main\"} 4\n",
            "custom_bucket{le=\"1\"} 0\n",
            "custom_bucket{le=\"2\"} 4\n",
            "custom_sum 6\n",
            "custom_count 4\n",
        ] {
            assert!(text.contains(line), "{line}in\n{text}");
        }
    }

    #[test]
    fn exemplars_show_in_openmetrics_on_their_bucket() {
        let r = recorder(&[], None);
        let h = metrics::with_local_recorder(&r, || metrics::histogram!("wait_seconds"));
        h.record(0.05);
        crate::exemplar::with_trace_id("abc123", || h.record(0.5));
        let open = render(&r, Format::OpenMetrics);
        let line = open
            .lines()
            .find(|l| l.starts_with("wait_seconds_bucket{le=\"1\"}"))
            .unwrap();
        assert!(
            line.starts_with("wait_seconds_bucket{le=\"1\"} 2 # {trace_id=\"abc123\"} 0.5 "),
            "{line}"
        );
        assert!(
            !open.contains("le=\"0.1\"} 1 #"),
            "no exemplar where none was given: {open}"
        );
        assert!(!render(&r, Format::Prometheus).contains("trace_id"));
    }

    #[test]
    fn one_name_keeps_one_type() {
        let r = recorder(&[], None);
        metrics::with_local_recorder(&r, || {
            metrics::counter!("x").increment(1);
            metrics::gauge!("x").set(5.0);
            metrics::histogram!("x").record(1.0);
        });
        assert_eq!(render(&r, Format::Prometheus), "# TYPE x counter\nx 1\n");
    }

    #[test]
    fn idle_series_expire_unless_a_handle_is_held() {
        let r = recorder(&[], Some(Duration::from_secs(60)));
        let kept = metrics::with_local_recorder(&r, || {
            metrics::counter!("a_total").increment(1);
            metrics::counter!("b_total")
        });
        let t0 = Instant::now();
        r.registry.expire_idle(t0);
        r.registry.expire_idle(t0 + Duration::from_secs(30));
        assert!(render(&r, Format::Prometheus).contains("a_total 1"));
        // Changed since: the clock starts again.
        metrics::with_local_recorder(&r, || metrics::counter!("a_total").increment(1));
        r.registry.expire_idle(t0 + Duration::from_secs(61));
        assert!(render(&r, Format::Prometheus).contains("a_total 2"));
        r.registry.expire_idle(t0 + Duration::from_secs(122));
        let text = render(&r, Format::Prometheus);
        assert!(!text.contains("a_total"), "{text}");
        assert!(
            text.contains("b_total 0"),
            "a held handle keeps its series: {text}"
        );
        kept.increment(1);
        assert!(render(&r, Format::Prometheus).contains("b_total 1"));
    }
}
