//! [`MetricsBuilder`]: installs the Prometheus recorder, describes the catalog, and returns the
//! [`Metrics`] handle that renders everything.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;

use metrics::Unit as MUnit;
use veza_core::catalog::{self, Group, MetricKind, Unit};

use crate::error::Error;
use crate::family::{Collector, Family, encode};
use crate::process::ProcessCollector;
use crate::recorder::{BucketRules, Buckets, Format, Recorder, Registry};
use crate::runtime::RuntimeCollector;
use crate::system::SystemCollector;

/// Histogram buckets for durations, in seconds: 0.5 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets for sizes, in bytes: 64 B to 16 MiB, by fours.
pub const BYTES_BUCKETS: &[f64] = &[
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];
/// Histogram buckets for any other histogram: the Prometheus clients' defaults.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The recorder's settings as a value, for configuration files (`serde`, durations as
/// `"5s"`; every field optional). Apply them with [`MetricsBuilder::config`].
///
/// ```
/// let config: veza_metrics::Config =
///     serde_json::from_str(r#"{"upkeep_interval": "1s", "system_metrics": false}"#)?;
/// let (_recorder, metrics) = veza_metrics::Metrics::builder().config(&config).build()?;
/// # drop(metrics);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// How often the upkeep looks for idle series (with an [`idle_timeout`](Self::idle_timeout)).
    /// Default 5 s.
    #[serde(with = "veza_core::duration::human")]
    pub upkeep_interval: Duration,
    /// Drop a series that no handle holds and whose value has not changed for this long
    /// (label values that come and go: a finished job, a closed tenant). It comes back, from
    /// zero, when recorded again. Default none: series stay.
    #[serde(with = "veza_core::duration::human::option")]
    pub idle_timeout: Option<Duration>,
    /// Whether to collect the process figures at scrape time. Default yes.
    pub process_metrics: bool,
    /// Whether to collect the machine's figures at scrape time. Default yes.
    pub system_metrics: bool,
    /// Whether to collect the figures of the tokio runtime the builder runs in (tasks, workers,
    /// queue, busy time), when it runs in one. Default yes.
    pub runtime_metrics: bool,
    /// Labels added to every series (`service`, `instance`, `region`), so that one Prometheus
    /// tells the instances apart. Default none.
    pub global_labels: std::collections::BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            upkeep_interval: Duration::from_secs(5),
            idle_timeout: None,
            process_metrics: true,
            system_metrics: true,
            runtime_metrics: true,
            global_labels: std::collections::BTreeMap::new(),
        }
    }
}

/// Sets up Prometheus metrics: `Metrics::builder().install()?`.
pub struct MetricsBuilder {
    upkeep: Duration,
    idle_timeout: Option<Duration>,
    process: bool,
    system: bool,
    runtime: bool,
    collectors: Vec<Box<dyn Collector>>,
    global_labels: Vec<(String, String)>,
    buckets: Vec<(String, Vec<f64>)>,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        let c = Config::default();
        MetricsBuilder {
            upkeep: c.upkeep_interval,
            idle_timeout: c.idle_timeout,
            process: c.process_metrics,
            system: c.system_metrics,
            runtime: c.runtime_metrics,
            collectors: Vec::new(),
            global_labels: Vec::new(),
            buckets: Vec::new(),
        }
    }
}

impl MetricsBuilder {
    /// Takes every setting of `config`, replacing earlier calls (collectors added with
    /// [`collector`](Self::collector) and buckets set with [`buckets`](Self::buckets) stay).
    pub fn config(mut self, config: &Config) -> Self {
        self.upkeep = config.upkeep_interval;
        self.idle_timeout = config.idle_timeout;
        self.process = config.process_metrics;
        self.system = config.system_metrics;
        self.runtime = config.runtime_metrics;
        self.global_labels = config
            .global_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self
    }

    /// Adds the label `name="value"` to every series, the recorder's and the collectors'
    /// (metrics-exporter-prometheus' `add_global_label`); a series that sets the label itself
    /// keeps its own value. A name that is not a Prometheus
    /// label name, starts with `__`, or is a label of a catalog metric is refused at build.
    pub fn global_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.global_labels.retain(|(k, _)| *k != name);
        self.global_labels.push((name, value.into()));
        self
    }

    /// Histogram buckets (upper bounds, in the metric's base unit) for the metric named
    /// exactly `metric`, instead of the defaults ([`SECONDS_BUCKETS`] for `_seconds`,
    /// [`BYTES_BUCKETS`] for `_bytes`, [`DEFAULT_BUCKETS`] otherwise). Bounds must be finite
    /// and strictly increasing, at most 1,000 of them.
    pub fn buckets(mut self, metric: impl Into<String>, bounds: &[f64]) -> Self {
        let metric = metric.into();
        self.buckets.retain(|(m, _)| *m != metric);
        self.buckets.push((metric, bounds.to_vec()));
        self
    }

    /// How often the upkeep looks for idle series; default 5 s.
    pub fn upkeep_interval(mut self, every: Duration) -> Self {
        self.upkeep = every;
        self
    }

    /// Drops a series that no handle holds and whose value has not changed for `after`
    /// (metrics-exporter-prometheus' `idle_timeout`, without its cost on every update: the
    /// upkeep compares values instead of stamping each one). A kept handle's series never
    /// goes. See [`Config::idle_timeout`].
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.idle_timeout = Some(after);
        self
    }

    /// Whether to collect the process figures at scrape time (default yes).
    pub fn process_metrics(mut self, on: bool) -> Self {
        self.process = on;
        self
    }

    /// Whether to collect the machine's figures at scrape time (default yes).
    pub fn system_metrics(mut self, on: bool) -> Self {
        self.system = on;
        self
    }

    /// Whether to collect the figures of the tokio runtime [`build`](Self::build) or
    /// [`install`](Self::install) runs in, when it runs in one (default yes): alive tasks,
    /// workers, the global queue, each worker's busy seconds and parks, the busy ratio since
    /// the previous scrape. Other runtimes: [`RuntimeCollector`](crate::RuntimeCollector).
    pub fn runtime_metrics(mut self, on: bool) -> Self {
        self.runtime = on;
        self
    }

    /// Adds a collector run at every scrape.
    pub fn collector(mut self, collector: impl Collector + 'static) -> Self {
        self.collectors.push(Box::new(collector));
        self
    }

    /// Installs the global recorder and describes every catalog metric. Histograms get real
    /// buckets ([`SECONDS_BUCKETS`] for `_seconds`, [`BYTES_BUCKETS`] for `_bytes`, else
    /// [`DEFAULT_BUCKETS`]), counted when recorded. Works with or without an async runtime.
    pub fn install(self) -> Result<Metrics, Error> {
        let (recorder, metrics) = self.build()?;
        metrics::set_global_recorder(recorder).map_err(|_| Error::AlreadyInstalled)?;
        describe_catalog();
        // Components built before now hold handles of no recorder: they make them again.
        veza_core::publish::recorder_installed();
        Ok(metrics)
    }

    /// Builds the recorder without installing it (for tests and benchmarks that install it
    /// themselves or use it with `metrics::with_local_recorder`): returns the recorder and the
    /// handle that renders it. The catalog is described when installed; describe it on a local
    /// recorder with [`Metrics::describe_catalog`].
    pub fn build(self) -> Result<(Recorder, Metrics), Error> {
        let registry = Arc::new(self.registry()?);
        let recorder = Recorder {
            registry: Arc::clone(&registry),
        };
        Ok((recorder, self.finish(registry)))
    }

    fn registry(&self) -> Result<Registry, Error> {
        if self.upkeep.is_zero() {
            // The upkeep thread would spin.
            return Err(Error::Config(
                "upkeep_interval must be above zero".to_owned(),
            ));
        }
        for (metric, bounds) in &self.buckets {
            let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
            if bounds.is_empty()
                || bounds.len() > 1000
                || !increasing
                || bounds.iter().any(|b| !b.is_finite())
            {
                return Err(Error::Config(format!(
                    "buckets for {metric} must be finite and strictly increasing, 1 to 1000 of them"
                )));
            }
        }
        for (name, _) in &self.global_labels {
            check_label_name(name)?;
        }
        let rules = BucketRules {
            full: self
                .buckets
                .iter()
                .map(|(metric, bounds)| (metric.clone(), Buckets::new(bounds)))
                .collect(),
            suffix: vec![
                ("_seconds".to_owned(), Buckets::new(SECONDS_BUCKETS)),
                ("_bytes".to_owned(), Buckets::new(BYTES_BUCKETS)),
            ],
            default: Buckets::new(DEFAULT_BUCKETS),
        };
        Ok(Registry::new(
            self.global_labels.clone(),
            rules,
            self.idle_timeout,
        ))
    }

    fn finish(self, registry: Arc<Registry>) -> Metrics {
        let mut collectors = self.collectors;
        if self.process {
            collectors.push(Box::new(ProcessCollector::new()));
        }
        if self.system {
            collectors.push(Box::new(SystemCollector::new()));
        }
        if self.runtime {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                collectors.push(Box::new(RuntimeCollector::new(runtime)));
            }
        }
        let inner = Arc::new(Inner {
            registry,
            collectors,
            global_labels: self.global_labels,
            stop: AtomicBool::new(false),
            render_lock: Mutex::new(()),
        });
        if self.idle_timeout.is_some() {
            let upkeep = Arc::downgrade(&inner);
            let every = self.upkeep;
            std::thread::Builder::new()
                .name("veza-metrics-upkeep".to_owned())
                .spawn(move || {
                    while let Some(inner) = upkeep.upgrade() {
                        if inner.stop.load(Relaxed) {
                            return;
                        }
                        inner.registry.expire_idle(Instant::now());
                        drop(inner);
                        std::thread::sleep(every);
                    }
                })
                .expect("spawning the metrics upkeep thread");
        }
        Metrics { inner }
    }
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("upkeep", &self.upkeep)
            .field("process", &self.process)
            .field("system", &self.system)
            .field("runtime", &self.runtime)
            .field("collectors", &self.collectors.len())
            .finish()
    }
}

/// Refuses what Prometheus would not accept as a label name, and the names the catalog's
/// metrics already use (the series would carry the label twice).
fn check_label_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    if !valid {
        return Err(Error::Config(format!(
            "{name:?} is not a Prometheus label name"
        )));
    }
    if catalog::ALL.iter().any(|d| d.labels.contains(&name)) {
        return Err(Error::Config(format!(
            "the global label {name:?} is already a label of a catalog metric"
        )));
    }
    Ok(())
}

/// Describes every catalog metric the recorder serves (the collectors describe their own).
fn describe_catalog() {
    for def in catalog::ALL {
        if matches!(def.group, Group::Process | Group::System | Group::Runtime) {
            continue;
        }
        let unit = match def.unit {
            Unit::Seconds => MUnit::Seconds,
            Unit::Bytes => MUnit::Bytes,
            Unit::Ratio | Unit::Count => MUnit::Count,
        };
        match def.kind {
            MetricKind::Counter => metrics::describe_counter!(def.name, unit, def.help),
            MetricKind::Gauge => metrics::describe_gauge!(def.name, unit, def.help),
            MetricKind::Histogram => metrics::describe_histogram!(def.name, unit, def.help),
        }
    }
}

struct Inner {
    registry: Arc<Registry>,
    collectors: Vec<Box<dyn Collector>>,
    global_labels: Vec<(String, String)>,
    stop: AtomicBool,
    /// One scrape at a time: collectors keep state between samples.
    render_lock: Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// The installed metrics: renders the text a Prometheus scrape gets, and serves it.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Metrics {
    /// A builder with the defaults (process and system collectors on, upkeep every 5 s).
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::default()
    }

    /// Everything, in the Prometheus text format: the recorder's metrics, then what the
    /// collectors read now. Every live pool, cache and worker pool of the Veza crates publishes
    /// its figures first (`veza_core::publish::publish_all`), so they are current without any
    /// `snapshot()` call.
    pub fn render(&self) -> String {
        self.render_as(Format::Prometheus)
    }

    /// [`render`](Self::render) in `format` (the exporter picks OpenMetrics when the scraper
    /// asks for it).
    pub fn render_as(&self, format: Format) -> String {
        let _one_at_a_time = self
            .inner
            .render_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        veza_core::publish::publish_all();
        let mut out = String::new();
        self.inner.registry.render(format, &mut out);
        let mut families: Vec<Family> = Vec::new();
        for collector in &self.inner.collectors {
            collector.collect(&mut families);
        }
        encode(&families, &self.inner.global_labels, format, &mut out);
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }

    /// Describes every catalog metric (help text) to the recorder in use on this thread: what
    /// [`MetricsBuilder::install`] does for the global one, for a recorder used with
    /// `metrics::with_local_recorder`.
    pub fn describe_catalog() {
        describe_catalog();
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("collectors", &self.inner.collectors.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_chooses_the_collectors_and_refuses_a_zero_upkeep() {
        let (_recorder, all) = Metrics::builder()
            .config(&Config::default())
            .build()
            .unwrap();
        let config = Config {
            system_metrics: false,
            ..Config::default()
        };
        let (_recorder, metrics) = Metrics::builder().config(&config).build().unwrap();
        let text = metrics.render();
        if cfg!(target_os = "linux") {
            assert!(all.render().contains("system_cpu_usage_ratio"));
            assert!(text.contains("process_cpu_seconds_total"), "{text}");
        }
        assert!(!text.contains("system_cpu_usage_ratio"), "{text}");
        let zero = Config {
            upkeep_interval: Duration::ZERO,
            ..Config::default()
        };
        let err = Metrics::builder().config(&zero).build().unwrap_err();
        assert!(err.to_string().contains("upkeep_interval"), "{err}");
    }

    #[test]
    fn global_labels_reach_every_series_and_buckets_are_per_metric() {
        let (recorder, metrics) = Metrics::builder()
            .global_label("service", "api")
            .global_label("instance", "a-1")
            .buckets("db_query_duration_seconds", &[0.01, 0.1, 1.0])
            .system_metrics(false)
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("cache_hits_total", "cache" => "users").increment(2);
            metrics::histogram!("db_query_duration_seconds", "pool" => "main").record(0.05);
            metrics::histogram!("http_request_duration_seconds").record(0.05);
        });
        let text = metrics.render();
        let hits = text
            .lines()
            .find(|l| l.starts_with("cache_hits_total{"))
            .expect("the counter");
        for label in [r#"cache="users""#, r#"service="api""#, r#"instance="a-1""#] {
            assert!(hits.contains(label) && hits.ends_with(" 2"), "{hits}");
        }
        // The collectors' series carry them too.
        let cpu = text
            .lines()
            .find(|l| l.starts_with("process_cpu_seconds_total"));
        if cfg!(target_os = "linux") {
            let cpu = cpu.expect("the process collector");
            assert!(
                cpu.contains(r#"service="api""#) && cpu.contains(r#"instance="a-1""#),
                "{cpu}"
            );
        }
        // Our buckets for the one metric, the defaults for the others.
        let buckets = |name: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}_bucket")))
                .filter_map(|l| {
                    l.split("le=\"")
                        .nth(1)?
                        .split('"')
                        .next()
                        .map(str::to_owned)
                })
                .collect()
        };
        assert_eq!(
            buckets("db_query_duration_seconds"),
            ["0.01", "0.1", "1", "+Inf"]
        );
        assert_eq!(
            buckets("http_request_duration_seconds").len(),
            SECONDS_BUCKETS.len() + 1
        );
    }

    #[test]
    fn bad_global_labels_and_buckets_are_refused() {
        for name in ["", "1st", "a-b", "__reserved", "pool", "cache"] {
            let err = Metrics::builder()
                .global_label(name, "x")
                .build()
                .unwrap_err()
                .to_string();
            assert!(err.contains("label"), "{name:?}: {err}");
        }
        for bounds in [&[][..], &[1.0, 1.0], &[2.0, 1.0], &[1.0, f64::NAN]] {
            let err = Metrics::builder()
                .buckets("x_seconds", bounds)
                .build()
                .unwrap_err()
                .to_string();
            assert!(err.contains("strictly increasing"), "{bounds:?}: {err}");
        }
    }

    #[test]
    fn the_runtime_it_is_built_in_is_in_the_scrape() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (_recorder, metrics) = rt.block_on(async {
            Metrics::builder()
                .process_metrics(false)
                .system_metrics(false)
                .build()
                .unwrap()
        });
        let first = metrics.render();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let stopped = std::sync::Mutex::new(stopped);
        let busy = rt.spawn(async move {
            // Busy on a worker for 300 ms, then a task that waits.
            let end = std::time::Instant::now() + Duration::from_millis(300);
            while std::time::Instant::now() < end {
                std::hint::black_box(0u64);
            }
        });
        let waiting = rt.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || stopped.lock().unwrap().recv()).await;
        });
        rt.block_on(busy).unwrap();
        // A worker hands its busy time to the runtime's metrics when it parks, a moment after
        // the task ends: scrape until it shows (at most 5 s).
        let busy_of = |text: &str| -> f64 {
            ["0", "1"]
                .iter()
                .map(|w| {
                    let prefix = format!("runtime_worker_busy_seconds_total{{worker=\"{w}\"}} ");
                    text.lines()
                        .find_map(|l| l.strip_prefix(&prefix))
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or_else(|| panic!("worker {w} in {text}"))
                })
                .sum()
        };
        let mut text = metrics.render();
        for _ in 0..100 {
            if busy_of(&text) >= 0.25 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            text = metrics.render();
        }
        stop.send(()).unwrap();
        rt.block_on(waiting).unwrap();
        assert!(first.contains("runtime_workers 2\n"), "{first}");
        assert!(
            !first.contains("runtime_busy_ratio"),
            "no ratio before a second scrape"
        );
        // The waiting task at least (the finished one may not be released yet).
        let alive: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("runtime_tasks_alive "))
            .and_then(|v| v.parse().ok())
            .expect("alive tasks");
        assert!((1.0..=2.0).contains(&alive), "{alive} in {text}");
        assert!(text.contains("runtime_global_queue_depth "), "{text}");
        let busy = busy_of(&text);
        assert!(busy >= 0.25, "{busy} s busy in {text}");
        let ratio: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("runtime_busy_ratio "))
            .and_then(|v| v.parse().ok())
            .expect("a ratio on the second scrape");
        assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
        let (_recorder, off) =
            rt.block_on(async { Metrics::builder().runtime_metrics(false).build().unwrap() });
        assert!(!off.render().contains("runtime_workers"));
    }

    #[test]
    fn configs_read_from_files_with_human_durations() {
        let c: Config = serde_json::from_str(r#"{"upkeep_interval": "250ms"}"#).unwrap();
        assert_eq!(c.upkeep_interval, Duration::from_millis(250));
        assert!(
            c.process_metrics && c.system_metrics,
            "absent fields keep their defaults"
        );
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let c: Config =
            serde_json::from_str(r#"{"global_labels": {"service": "api", "region": "eu"}}"#)
                .unwrap();
        assert_eq!(
            c.global_labels.get("region").map(String::as_str),
            Some("eu")
        );
        let (_recorder, metrics) = Metrics::builder().config(&c).build().unwrap();
        assert!(metrics.render().contains(r#"region="eu""#));
        for bad in [r#"{"upkeep_interval": 5}"#, r#"{"upkeep": "5s"}"#] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}
