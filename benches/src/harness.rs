//! Running cases: arguments, warm-up, interleaved samples, progress and the output record.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::format::{format_duration, format_value};
use crate::schema::{Allocs, CaseRecord, median};

/// What a case measures, which also says whether higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Work per second: higher is better.
    Throughput,
    /// Time per operation: lower is better.
    Latency,
    /// A share such as a hit ratio: higher is better.
    Ratio,
}

impl Metric {
    fn as_str(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::Latency => "latency",
            Metric::Ratio => "ratio",
        }
    }

    fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Latency)
    }
}

/// The description of one case.
#[derive(Debug, Clone)]
pub struct Case {
    id: String,
    what: String,
    metric: Metric,
    unit: String,
    ours: String,
    samples: usize,
    quick_samples: usize,
    /// Operations per sample, for allocations per operation.
    ops: Option<u64>,
}

impl Case {
    /// A case `id` (`suite/name`) measuring `metric` in `unit`; `ours` is our contender's key.
    pub fn new(id: &str, what: &str, metric: Metric, unit: &str, ours: &str) -> Case {
        Case {
            id: id.to_owned(),
            what: what.to_owned(),
            metric,
            unit: unit.to_owned(),
            ours: ours.to_owned(),
            samples: 15,
            quick_samples: 5,
            ops: None,
        }
    }

    /// The operations one sample performs (in this run: mind `--quick`): the case then
    /// records allocations and bytes per operation for every contender (one extra, counting
    /// sample each). A contender that does a different number says so with
    /// [`Contender::ops`].
    pub fn ops(mut self, ops: usize) -> Case {
        self.ops = Some(ops.max(1) as u64);
        self
    }

    /// Samples per contender in a full run and in a quick run (defaults 15 and 5).
    pub fn samples(mut self, full: usize, quick: usize) -> Case {
        self.samples = full.max(1);
        self.quick_samples = quick.max(1);
        self
    }

    /// The case id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// One contender: a name and a function that takes one sample, in the case's unit.
pub struct Contender<'a> {
    name: String,
    sample: Box<dyn FnMut() -> f64 + 'a>,
    ops: Option<u64>,
}

impl<'a> Contender<'a> {
    /// A contender called `name` whose `sample` runs the work once and returns its measure.
    pub fn new(name: &str, sample: impl FnMut() -> f64 + 'a) -> Self {
        Contender {
            name: name.to_owned(),
            sample: Box::new(sample),
            ops: None,
        }
    }

    /// The operations one of this contender's samples performs, when not the case's.
    pub fn ops(mut self, ops: usize) -> Self {
        self.ops = Some(ops.max(1) as u64);
        self
    }
}

impl std::fmt::Debug for Contender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .finish()
    }
}

/// A suite's run: its arguments and where its records go.
#[derive(Debug)]
pub struct Bench {
    suite: String,
    quick: bool,
    filters: Vec<String>,
    /// `--only NAME`: run just this contender (for profiling one contender; never in reports).
    only: Option<String>,
    out: Option<PathBuf>,
}

impl Bench {
    /// Reads `--quick` and `--filter` from the process arguments and `VEZA_BENCH_OUT` from the
    /// environment.
    pub fn from_args(suite: &str) -> Bench {
        let mut quick = false;
        let mut filters = Vec::new();
        let mut only = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--filter" => filters.extend(args.next()),
                "--only" => only = args.next(),
                _ => {}
            }
        }
        Bench {
            suite: suite.to_owned(),
            quick,
            filters,
            only,
            out: std::env::var_os("VEZA_BENCH_OUT").map(PathBuf::from),
        }
    }

    /// Whether this is a quick run: use it to shrink the work of a sample, not its meaning.
    pub fn quick(&self) -> bool {
        self.quick
    }

    /// Whether the case `id` passes the filters.
    pub fn wants(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }

    /// The PostgreSQL URL, or the reason there is none.
    pub fn database_url(&self) -> Result<String, String> {
        if let Ok(reason) = std::env::var("VEZA_BENCH_NO_DB") {
            return Err(reason);
        }
        std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set".to_owned())
    }

    /// The Redis URL, or the reason there is none.
    pub fn redis_url(&self) -> Result<String, String> {
        if let Ok(reason) = std::env::var("VEZA_BENCH_NO_REDIS") {
            return Err(reason);
        }
        std::env::var("REDIS_URL").map_err(|_| "REDIS_URL is not set".to_owned())
    }

    /// Records `case` as skipped, with the reason.
    pub fn skip(&self, case: &Case, reason: &str) {
        if !self.wants(&case.id) {
            return;
        }
        eprintln!("  {:<32} skipped: {reason}", case.id);
        self.write(&self.record(case, IndexMap::new(), Some(reason.to_owned())));
    }

    /// Runs every contender of `case` interleaved, after one warm-up sample each, and writes
    /// the record. Does nothing if the case is filtered out. The first contender must be ours.
    pub fn run(&self, case: &Case, mut contenders: Vec<Contender<'_>>) -> Option<CaseRecord> {
        if !self.wants(&case.id) {
            return None;
        }
        assert_eq!(
            contenders.first().map(|c| c.name.as_str()),
            Some(case.ours.as_str()),
            "{}: the first contender must be ours",
            case.id
        );
        if let Some(only) = &self.only {
            contenders.retain(|c| &c.name == only);
            if contenders.is_empty() {
                return None;
            }
        }
        let rounds = if self.quick {
            case.quick_samples
        } else {
            case.samples
        };
        let started = Instant::now();
        eprintln!(
            "  {:<32} {} contenders x {rounds} samples: {}",
            case.id,
            contenders.len(),
            contenders
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for c in &mut contenders {
            std::hint::black_box((c.sample)()); // warm-up: caches, allocator, thread pools
        }
        let mut samples: IndexMap<String, Vec<f64>> = contenders
            .iter()
            .map(|c| (c.name.clone(), Vec::with_capacity(rounds)))
            .collect();
        let count = contenders.len();
        let total = rounds * count;
        for round in 0..rounds {
            for (i, c) in contenders.iter_mut().enumerate() {
                let value = (c.sample)();
                samples[&c.name].push(value);
                let done = round * count + i + 1;
                self.progress(case, round, rounds, &c.name, value, started, done, total);
            }
        }
        let mut record = self.record(case, samples, None);
        if let Some(case_ops) = case.ops {
            for c in &mut contenders {
                let ops = c.ops.unwrap_or(case_ops) as f64;
                let counted = crate::alloc::count(|| {
                    std::hint::black_box((c.sample)());
                });
                let Some((allocs, bytes)) = counted else {
                    eprintln!(
                        "  {:<32} no CountingAlloc installed: allocations not counted",
                        case.id
                    );
                    break;
                };
                let per_op = Allocs {
                    per_op: allocs as f64 / ops,
                    bytes_per_op: bytes as f64 / ops,
                };
                eprintln!(
                    "  {:<32} {:<26} {:>10.3} allocs/op {:>12.1} B/op",
                    case.id, c.name, per_op.per_op, per_op.bytes_per_op
                );
                record.allocs.insert(c.name.clone(), per_op);
            }
        }
        if self.only.is_none() {
            self.write(&record);
        }
        Some(record)
    }

    #[allow(clippy::too_many_arguments, reason = "one progress line, many facts")]
    fn progress(
        &self,
        case: &Case,
        round: usize,
        rounds: usize,
        name: &str,
        value: f64,
        started: Instant,
        done: usize,
        total: usize,
    ) {
        let elapsed = started.elapsed();
        let left = elapsed.mul_f64((total - done) as f64 / done as f64);
        eprintln!(
            "  {:<32} [{:>2}/{rounds}] {:<26} {:>16}   {} elapsed, ~{} left",
            case.id,
            round + 1,
            name,
            format_value(value, &case.unit),
            format_duration(elapsed),
            format_duration(left.max(Duration::ZERO)),
        );
    }

    fn record(
        &self,
        case: &Case,
        samples: IndexMap<String, Vec<f64>>,
        skipped: Option<String>,
    ) -> CaseRecord {
        CaseRecord {
            id: case.id.clone(),
            what: case.what.clone(),
            metric: case.metric.as_str().to_owned(),
            unit: case.unit.clone(),
            higher_is_better: case.metric.higher_is_better(),
            ours: case.ours.clone(),
            results: samples
                .iter()
                .map(|(k, v)| (k.clone(), median(v)))
                .collect(),
            samples,
            skipped,
            allocs: IndexMap::new(),
        }
    }

    fn write(&self, record: &CaseRecord) {
        let Some(path) = &self.out else { return };
        let line = serde_json::to_string(record).expect("a record always serialises");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: cannot open {}: {e}", self.suite, path.display()));
        writeln!(file, "{line}").expect("writing a bench record");
    }
}
