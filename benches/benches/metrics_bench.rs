//! `metrics/*`: veza-metrics (the `metrics` facade with metrics-exporter-prometheus) against
//! the `prometheus` crate, each used the way its docs recommend: kept handles on both sides.

use std::hint::black_box;
use std::time::Instant;

use prometheus::core::Collector as _;
use veza_benches::{Bench, Case, Contender, Metric};
use veza_metrics::{Collector as _, Metrics, ProcessCollector};

fn main() {
    let bench = Bench::from_args("metrics");
    let ops = if bench.quick() { 2_000_000 } else { 10_000_000 };
    counter_inc(&bench, ops);
    histogram_record(&bench, ops / 4);
    render_10k(&bench);
    process_sample(&bench);
}

/// A recorder of our own, not installed globally, with the collectors off.
fn ours() -> (veza_metrics::PrometheusRecorder, Metrics) {
    Metrics::builder()
        .process_metrics(false)
        .system_metrics(false)
        .build()
        .expect("recorder")
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
    );
    let (recorder, _m) = ours();
    let counter = metrics::with_local_recorder(
        &recorder,
        || metrics::counter!("http_requests_total", "method" => "GET", "route" => "/users/{id}", "status" => "200"),
    );
    let registry = prometheus::Registry::new();
    let peer = prometheus::IntCounterVec::new(
        prometheus::Opts::new("http_requests_total", "requests"),
        &["method", "route", "status"],
    )
    .expect("counter");
    registry.register(Box::new(peer.clone())).expect("register");
    let peer = peer.with_label_values(&["GET", "/users/{id}", "200"]);
    bench.run(
        &case,
        vec![
            Contender::new("veza-metrics", || {
                ns_per_op(ops, || {
                    for _ in 0..ops {
                        black_box(&counter).increment(1);
                    }
                })
            }),
            Contender::new("prometheus", || {
                ns_per_op(ops, || {
                    for _ in 0..ops {
                        black_box(&peer).inc();
                    }
                })
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
    );
    let (recorder, m) = ours();
    let histogram = metrics::with_local_recorder(
        &recorder,
        || metrics::histogram!("http_request_duration_seconds", "method" => "GET", "route" => "/users/{id}"),
    );
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
            Contender::new("veza-metrics", || {
                ns_per_op(ops, || {
                    for i in 0..ops {
                        black_box(&histogram).record(value(i));
                    }
                    m.prometheus().run_upkeep(); // fold the recorded samples into buckets
                })
            }),
            Contender::new("prometheus", || {
                ns_per_op(ops, || {
                    for i in 0..ops {
                        black_box(&peer).observe(value(i));
                    }
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
    );
    let (recorder, m) = ours();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..10_000 {
            metrics::counter!("cache_hits_total", "cache" => format!("c{i}")).increment(i);
        }
    });
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
