//! `metrics/*`: veza-metrics (the `metrics` facade into its own recorder) against the
//! `prometheus` crate, each used the way its docs recommend: kept handles on both sides. The
//! `metrics-exporter-prometheus` recorder (what veza-metrics was built on before) runs beside
//! them through the same facade, for the record of why it left the hot path.

use std::hint::black_box;
use std::time::Instant;

use prometheus::core::Collector as _;
use veza_benches::{Bench, Case, Contender, Metric};
use veza_metrics::{Collector as _, Metrics, ProcessCollector};

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("metrics");
    let ops = if bench.quick() { 2_000_000 } else { 10_000_000 };
    counter_inc(&bench, ops);
    counter_inc_2threads(&bench, ops / 2);
    histogram_record(&bench, ops / 4);
    render_10k(&bench);
    process_sample(&bench);
}

/// A recorder of our own, not installed globally, with the collectors off.
fn ours() -> (veza_metrics::Recorder, Metrics) {
    Metrics::builder()
        .process_metrics(false)
        .system_metrics(false)
        .build()
        .expect("recorder")
}

/// metrics-exporter-prometheus' recorder, not installed, with our histogram buckets.
fn exporter() -> metrics_exporter_prometheus::PrometheusRecorder {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(veza_metrics::SECONDS_BUCKETS)
        .expect("buckets")
        .build_recorder()
}

fn labelled_counter() -> metrics::Counter {
    metrics::counter!("http_requests_total", "method" => "GET", "route" => "/users/{id}", "status" => "200")
}

fn prometheus_counter() -> prometheus::IntCounter {
    let registry = prometheus::Registry::new();
    let peer = prometheus::IntCounterVec::new(
        prometheus::Opts::new("http_requests_total", "requests"),
        &["method", "route", "status"],
    )
    .expect("counter");
    registry.register(Box::new(peer.clone())).expect("register");
    peer.with_label_values(&["GET", "/users/{id}", "200"])
}

/// ns per increment with two threads incrementing `inc` `ops` times each at once.
fn two_threads(ops: usize, inc: &(impl Fn() + Sync)) -> f64 {
    let barrier = std::sync::Barrier::new(2);
    let start = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            barrier.wait();
            for _ in 0..ops {
                inc();
            }
        });
        barrier.wait();
        let start = Instant::now();
        for _ in 0..ops {
            inc();
        }
        worker.join().expect("worker");
        start
    });
    start.elapsed().as_nanos() as f64 / (2 * ops) as f64
}

fn ns_per_op(ops: usize, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn counter_inc(bench: &Bench, ops: usize) {
    let case = Case::new(
        "metrics/counter_inc",
        "increment a kept counter handle, one thread",
        Metric::Latency,
        "ns",
        "veza-metrics",
    )
    .ops(ops);
    counters(bench, &case, OneThread(ops));
}

fn counter_inc_2threads(bench: &Bench, ops: usize) {
    let case = Case::new(
        "metrics/counter_inc_2threads",
        "the same labelled counter incremented from two threads at once, kept handles",
        Metric::Latency,
        "ns",
        "veza-metrics",
    )
    .ops(2 * ops);
    counters(bench, &case, TwoThreads(ops));
}

/// ns per increment, the increment inlined into the timed loop.
trait Timer {
    fn time(&self, inc: impl Fn() + Sync) -> f64;
}

struct OneThread(usize);

impl Timer for OneThread {
    fn time(&self, inc: impl Fn() + Sync) -> f64 {
        ns_per_op(self.0, || {
            for _ in 0..self.0 {
                inc();
            }
        })
    }
}

struct TwoThreads(usize);

impl Timer for TwoThreads {
    fn time(&self, inc: impl Fn() + Sync) -> f64 {
        two_threads(self.0, &inc)
    }
}

/// The same labelled counter in each contender, kept handles.
fn counters(bench: &Bench, case: &Case, timer: impl Timer) {
    let (recorder, _m) = ours();
    let counter = metrics::with_local_recorder(&recorder, labelled_counter);
    let exporter = exporter();
    let via_exporter = metrics::with_local_recorder(&exporter, labelled_counter);
    let peer = prometheus_counter();
    bench.run(
        case,
        vec![
            Contender::new("veza-metrics", || {
                timer.time(|| black_box(&counter).increment(1))
            }),
            Contender::new("prometheus", || timer.time(|| black_box(&peer).inc())),
            Contender::new("metrics-exporter-prometheus", || {
                timer.time(|| black_box(&via_exporter).increment(1))
            }),
        ],
    );
}

fn histogram_record(bench: &Bench, ops: usize) {
    let case = Case::new(
        "metrics/histogram_record",
        "record a duration in a kept histogram handle, one thread, including the work deferred to upkeep",
        Metric::Latency,
        "ns",
        "veza-metrics",
    )
    .ops(ops);
    let (recorder, _m) = ours();
    let labelled = || metrics::histogram!("http_request_duration_seconds", "method" => "GET", "route" => "/users/{id}");
    let histogram = metrics::with_local_recorder(&recorder, labelled);
    let exporter = exporter();
    let via_exporter = metrics::with_local_recorder(&exporter, labelled);
    let handle = exporter.handle();
    let peer = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("http_request_duration_seconds", "duration")
            .buckets(veza_metrics::SECONDS_BUCKETS.to_vec()),
        &["method", "route"],
    )
    .expect("histogram");
    let peer = peer.with_label_values(&["GET", "/users/{id}"]);
    let value = |i: usize| (i % 1000) as f64 * 1e-4;
    bench.run(
        &case,
        vec![
            // Bucketed when recorded: nothing is deferred.
            Contender::new("veza-metrics", || {
                ns_per_op(ops, || {
                    for i in 0..ops {
                        black_box(&histogram).record(value(i));
                    }
                })
            }),
            Contender::new("prometheus", || {
                ns_per_op(ops, || {
                    for i in 0..ops {
                        black_box(&peer).observe(value(i));
                    }
                })
            }),
            Contender::new("metrics-exporter-prometheus", || {
                ns_per_op(ops, || {
                    for i in 0..ops {
                        black_box(&via_exporter).record(value(i));
                    }
                    handle.run_upkeep(); // fold the recorded samples into buckets
                })
            }),
        ],
    );
}

fn render_10k(bench: &Bench) {
    let case = Case::new(
        "metrics/render_10k",
        "render 10,000 counter series in the Prometheus text format",
        Metric::Latency,
        "ns",
        "veza-metrics",
    )
    .ops(1);
    let (recorder, m) = ours();
    let exporter = exporter();
    let handle = exporter.handle();
    let series = || {
        for i in 0..10_000 {
            metrics::counter!("cache_hits_total", "cache" => format!("c{i}")).increment(i);
        }
    };
    metrics::with_local_recorder(&recorder, series);
    metrics::with_local_recorder(&exporter, series);
    let registry = prometheus::Registry::new();
    let peer = prometheus::IntCounterVec::new(
        prometheus::Opts::new("cache_hits_total", "hits"),
        &["cache"],
    )
    .expect("counter");
    registry.register(Box::new(peer.clone())).expect("register");
    for i in 0..10_000u64 {
        peer.with_label_values(&[&format!("c{i}")]).inc_by(i);
    }
    bench.run(
        &case,
        vec![
            Contender::new("veza-metrics", || {
                ns_per_op(1, || {
                    black_box(m.render());
                })
            }),
            Contender::new("prometheus", || {
                ns_per_op(1, || {
                    let families = registry.gather();
                    black_box(
                        prometheus::TextEncoder::new()
                            .encode_to_string(&families)
                            .expect("encode"),
                    );
                })
            }),
            Contender::new("metrics-exporter-prometheus", || {
                ns_per_op(1, || {
                    black_box(handle.render());
                })
            }),
        ],
    );
}

fn process_sample(bench: &Bench) {
    let case = Case::new(
        "metrics/process_sample",
        "one process-collector sample (read /proc/self, build the families)",
        Metric::Latency,
        "ns",
        "veza-metrics",
    );
    let ours = ProcessCollector::new();
    let peer = prometheus::process_collector::ProcessCollector::for_self();
    const N: usize = 200;
    let case = case.ops(N);
    bench.run(
        &case,
        vec![
            Contender::new("veza-metrics", || {
                ns_per_op(N, || {
                    for _ in 0..N {
                        let mut out = Vec::new();
                        ours.collect(&mut out);
                        black_box(out);
                    }
                })
            }),
            Contender::new("prometheus", || {
                ns_per_op(N, || {
                    for _ in 0..N {
                        black_box(peer.collect());
                    }
                })
            }),
        ],
    );
}
