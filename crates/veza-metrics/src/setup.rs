//! [`MetricsBuilder`]: installs the Prometheus recorder, describes the catalog, and returns the
//! [`Metrics`] handle that renders everything.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::Unit as MUnit;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use veza_core::catalog::{self, Group, MetricKind, Unit};

use crate::error::Error;
use crate::family::{Collector, Family, encode};
use crate::process::ProcessCollector;
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
    /// How often the exporter's upkeep runs (draining histogram samples). Default 5 s.
    #[serde(with = "veza_core::duration::human")]
    pub upkeep_interval: Duration,
    /// Whether to collect the process figures at scrape time. Default yes.
    pub process_metrics: bool,
    /// Whether to collect the machine's figures at scrape time. Default yes.
    pub system_metrics: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            upkeep_interval: Duration::from_secs(5),
            process_metrics: true,
            system_metrics: true,
        }
    }
}

/// Sets up Prometheus metrics: `Metrics::builder().install()?`.
pub struct MetricsBuilder {
    upkeep: Duration,
    process: bool,
    system: bool,
    collectors: Vec<Box<dyn Collector>>,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        let c = Config::default();
        MetricsBuilder {
            upkeep: c.upkeep_interval,
            process: c.process_metrics,
            system: c.system_metrics,
            collectors: Vec::new(),
        }
    }
}

impl MetricsBuilder {
    /// Takes every setting of `config`, replacing earlier calls (collectors added with
    /// [`collector`](Self::collector) stay).
    pub fn config(mut self, config: &Config) -> Self {
        self.upkeep = config.upkeep_interval;
        self.process = config.process_metrics;
        self.system = config.system_metrics;
        self
    }

    /// How often the exporter's upkeep runs (draining histogram samples); default 5 s.
    pub fn upkeep_interval(mut self, every: Duration) -> Self {
        self.upkeep = every;
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

    /// Adds a collector run at every scrape.
    pub fn collector(mut self, collector: impl Collector + 'static) -> Self {
        self.collectors.push(Box::new(collector));
        self
    }

    /// Installs the global recorder and describes every catalog metric. Histograms whose name
    /// carries `_seconds` or `_bytes` get real buckets. Works with or without an async runtime:
    /// upkeep runs on its own thread.
    pub fn install(self) -> Result<Metrics, Error> {
        let handle = self.prometheus()?.install_recorder().map_err(|e| match e {
            metrics_exporter_prometheus::BuildError::FailedToSetGlobalRecorder(_) => {
                Error::AlreadyInstalled
            }
            other => Error::Config(other.to_string()),
        })?;
        describe_catalog();
        // Components built before now hold handles of no recorder: they make them again.
        veza_core::publish::recorder_installed();
        Ok(self.finish(handle))
    }

    /// Builds the recorder without installing it (for tests and benchmarks that install it
    /// themselves or use it locally): returns the recorder and the handle.
    pub fn build(self) -> Result<(PrometheusRecorder, Metrics), Error> {
        let recorder = self.prometheus()?.build_recorder();
        let handle = recorder.handle();
        Ok((recorder, self.finish(handle)))
    }

    fn prometheus(&self) -> Result<PrometheusBuilder, Error> {
        if self.upkeep.is_zero() {
            // The upkeep thread would spin.
            return Err(Error::Config(
                "upkeep_interval must be above zero".to_owned(),
            ));
        }
        let config = |e: metrics_exporter_prometheus::BuildError| Error::Config(e.to_string());
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
            .map_err(config)
    }

    fn finish(self, handle: PrometheusHandle) -> Metrics {
        let mut collectors = self.collectors;
        if self.process {
            collectors.push(Box::new(ProcessCollector::new()));
        }
        if self.system {
            collectors.push(Box::new(SystemCollector::new()));
        }
        let inner = Arc::new(Inner {
            handle,
            collectors,
            stop: AtomicBool::new(false),
            render_lock: Mutex::new(()),
        });
        let upkeep = Arc::downgrade(&inner);
        let every = self.upkeep;
        std::thread::Builder::new()
            .name("veza-metrics-upkeep".to_owned())
            .spawn(move || {
                while let Some(inner) = upkeep.upgrade() {
                    if inner.stop.load(Relaxed) {
                        return;
                    }
                    inner.handle.run_upkeep();
                    drop(inner);
                    std::thread::sleep(every);
                }
            })
            .expect("spawning the metrics upkeep thread");
        Metrics { inner }
    }
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("upkeep", &self.upkeep)
            .field("process", &self.process)
            .field("system", &self.system)
            .field("collectors", &self.collectors.len())
            .finish()
    }
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
    handle: PrometheusHandle,
    collectors: Vec<Box<dyn Collector>>,
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
        let _one_at_a_time = self
            .inner
            .render_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        veza_core::publish::publish_all();
        let mut out = self.inner.handle.render();
        let mut families: Vec<Family> = Vec::new();
        for collector in &self.inner.collectors {
            collector.collect(&mut families);
        }
        encode(&families, &mut out);
        out
    }

    /// The underlying exporter handle.
    pub fn prometheus(&self) -> &PrometheusHandle {
        &self.inner.handle
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
    fn configs_read_from_files_with_human_durations() {
        let c: Config = serde_json::from_str(r#"{"upkeep_interval": "250ms"}"#).unwrap();
        assert_eq!(c.upkeep_interval, Duration::from_millis(250));
        assert!(
            c.process_metrics && c.system_metrics,
            "absent fields keep their defaults"
        );
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        for bad in [r#"{"upkeep_interval": 5}"#, r#"{"upkeep": "5s"}"#] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}
