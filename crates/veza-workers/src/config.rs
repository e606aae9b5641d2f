//! Pool configuration: [`Config`], its [`Builder`], and job [`Priority`].

use std::fmt;

use crate::error::BuildError;
use crate::pool::WorkerPool;

/// The priority of a job. Higher priorities are taken first; see the crate docs for the exact
/// rule and the guard that keeps lower priorities from starving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Priority {
    /// Taken last.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Taken first.
    High,
}

impl Priority {
    /// Every priority, highest first (the order workers look in).
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// A stable lowercase name, used as the `priority` metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// 0 for high, 1 for normal, 2 for low: the index of its queue and of
    /// `QueueStats::depth_by_priority`.
    pub(crate) const fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configuration of a [`WorkerPool`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Config {
    /// The pool's name: the `pool` label of its metrics and the prefix of its thread names.
    /// Default `"default"`.
    pub name: String,
    /// Worker threads. Default: the available parallelism.
    pub workers: usize,
    /// The most jobs waiting to start, all priorities together. Default 1000 (the guide's).
    pub capacity: usize,
    /// After this many jobs taken from higher priorities while a lower one waited, a worker
    /// takes one job of the lower priority. `None` means strict priority. Default `Some(32)`.
    pub starvation_limit: Option<u32>,
    /// Stack size of each worker thread in bytes. Default: the platform's.
    pub stack_size: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default".to_owned(),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            capacity: 1000,
            starvation_limit: Some(32),
            stack_size: None,
        }
    }
}

impl Config {
    /// Checks the values; called by [`WorkerPool::new`].
    pub fn validate(&self) -> Result<(), BuildError> {
        if self.workers == 0 {
            return Err(BuildError::InvalidConfig("workers must be at least 1"));
        }
        if self.capacity == 0 {
            return Err(BuildError::InvalidConfig("capacity must be at least 1"));
        }
        if self.name.is_empty() {
            return Err(BuildError::InvalidConfig("name must not be empty"));
        }
        if self.starvation_limit == Some(0) {
            return Err(BuildError::InvalidConfig(
                "starvation_limit must be at least 1 (None means strict priority)",
            ));
        }
        Ok(())
    }
}

/// Builds a [`WorkerPool`]: `WorkerPool::builder().workers(4).capacity(10_000).build()`.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: Config,
}

impl Builder {
    /// A builder with the default configuration.
    pub fn new() -> Self {
        Builder::default()
    }

    /// See [`Config::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// See [`Config::workers`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }

    /// See [`Config::capacity`].
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity;
        self
    }

    /// See [`Config::starvation_limit`]; `None` for strict priority.
    pub fn starvation_limit(mut self, limit: Option<u32>) -> Self {
        self.config.starvation_limit = limit;
        self
    }

    /// See [`Config::stack_size`].
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.config.stack_size = Some(bytes);
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts the pool's threads.
    pub fn build(self) -> Result<WorkerPool, BuildError> {
        WorkerPool::new(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_guide() {
        let c = Config::default();
        assert_eq!(c.capacity, 1000);
        assert!(c.workers >= 1);
        assert_eq!(c.starvation_limit, Some(32));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (builder, needle) in [
            (Builder::new().workers(0), "workers"),
            (Builder::new().capacity(0), "capacity"),
            (Builder::new().name(""), "name"),
            (Builder::new().starvation_limit(Some(0)), "starvation_limit"),
        ] {
            let err = builder.config().validate().unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn priorities_order_and_index() {
        assert!(Priority::High > Priority::Normal && Priority::Normal > Priority::Low);
        let idx: Vec<_> = Priority::ALL.iter().map(|p| p.index()).collect();
        assert_eq!(idx, [0, 1, 2]);
    }
}
