//! The settings of a [`BufferPool`](crate::BufferPool) and a [`MemoryBudget`](crate::MemoryBudget)
//! as values, with `serde` behind the feature, for configuration files.

use std::time::Duration;

/// The settings of a [`BufferPool`](crate::BufferPool): build it with
/// [`BufferPool::from_config`](crate::BufferPool::from_config).
///
/// With the `serde` feature every field is optional in a file:
///
/// ```toml
/// name = "uploads"
/// classes = [4096, 65536, 1048576]
/// max_retained_bytes = 67108864
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BufferPoolConfig {
    /// The prefix of its size classes' `pool` metric label. Default `"buffers"`.
    pub name: String,
    /// Class sizes in bytes, strictly increasing. Default 4 KiB, 16 KiB, 64 KiB, 256 KiB, 1 MiB.
    pub classes: Vec<usize>,
    /// The most bytes kept idle, all classes together. Default 64 MiB.
    pub max_retained_bytes: u64,
}

impl Default for BufferPoolConfig {
    fn default() -> Self {
        BufferPoolConfig {
            name: "buffers".to_owned(),
            classes: vec![4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20],
            max_retained_bytes: 64 << 20,
        }
    }
}

/// The settings of a [`MemoryBudget`](crate::MemoryBudget): build it with
/// [`MemoryBudget::from_config`](crate::MemoryBudget::from_config), then sample on
/// `interval` with [`MemoryBudget::start`](crate::MemoryBudget::start).
///
/// The default has no limit, which [`MemoryBudget::from_config`](crate::MemoryBudget::from_config)
/// refuses: a budget is a decision about this service. With the `serde` feature:
///
/// ```toml
/// limit_bytes = 1073741824
/// high = 0.8
/// critical = 1.0
/// interval = "30s"
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BudgetConfig {
    /// The budget in bytes. Default 0: must be set.
    pub limit_bytes: u64,
    /// The fraction of the limit from which pressure is high. Default 0.8.
    pub high: f64,
    /// The fraction of the limit from which pressure is critical. Default 1.0.
    pub critical: f64,
    /// How often a started budget samples its usage. Default 30 s (the guide's).
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub interval: Duration,
    /// With [`MemoryBudget::for_cgroup`](crate::MemoryBudget::for_cgroup): pressure is at
    /// least high while some task stalled on memory this share (percent) of the last 10 s
    /// (PSI `some avg10`), whatever the usage. Default 10. Above 100: not used.
    pub stall_high: f64,
    /// Likewise for critical, on PSI `full avg10` (every task stalled). Default 20.
    pub stall_critical: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            limit_bytes: 0,
            high: 0.8,
            critical: 1.0,
            interval: Duration::from_secs(30),
            stall_high: 10.0,
            stall_critical: 20.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BufferPool, MemoryBudget, Pressure, UsageSource};
    use veza_core::Observe;

    #[test]
    fn a_buffer_pool_config_sets_classes_and_cap() {
        let config = BufferPoolConfig {
            name: "uploads".to_owned(),
            classes: vec![1024, 8192],
            max_retained_bytes: 1 << 20,
        };
        let pool: BufferPool = BufferPool::from_config(&config).unwrap();
        assert_eq!(pool.class_sizes(), [1024, 8192]);
        assert!(pool.get(1000).capacity() >= 1000);
        assert!(
            pool.get(5000).capacity() >= 8192,
            "served from the 8 KiB class"
        );
        let bad = BufferPoolConfig {
            classes: vec![4096, 1024],
            ..BufferPoolConfig::default()
        };
        assert!(BufferPool::<Vec<u8>>::from_config(&bad).is_err());
        let default: BufferPool = BufferPool::from_config(&BufferPoolConfig::default()).unwrap();
        assert_eq!(default.class_sizes().len(), 5);
        // The cap: 8 KiB in all leaves each of the two classes 4 KiB, too little to keep an
        // 8 KiB buffer; the same pool with 1 MiB keeps it.
        for (cap, kept) in [(8 << 10, 0), (1 << 20, 1)] {
            let pool: BufferPool = BufferPool::from_config(&BufferPoolConfig {
                max_retained_bytes: cap,
                ..config.clone()
            })
            .unwrap();
            drop(pool.get(5000));
            assert_eq!(pool.snapshot().idle, kept, "cap {cap}");
        }
    }

    #[test]
    fn a_budget_config_sets_limit_and_thresholds() {
        let err = MemoryBudget::from_config(&BudgetConfig::default(), UsageSource::ResidentSet)
            .unwrap_err();
        assert!(err.to_string().contains("above zero"), "{err}");
        let config = BudgetConfig {
            limit_bytes: 1000,
            high: 0.5,
            critical: 0.9,
            ..BudgetConfig::default()
        };
        let budget = MemoryBudget::from_config(&config, UsageSource::ResidentSet).unwrap();
        assert_eq!(budget.limit(), 1000);
        assert_eq!(budget.level_for(499), Pressure::Normal);
        assert_eq!(budget.level_for(500), Pressure::High);
        assert_eq!(budget.level_for(900), Pressure::Critical);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn configs_read_from_files_with_human_durations() {
        let b: BudgetConfig =
            serde_json::from_str(r#"{"limit_bytes": 1048576, "interval": "5s"}"#).unwrap();
        assert_eq!(b.limit_bytes, 1 << 20);
        assert_eq!(b.interval, Duration::from_secs(5));
        assert_eq!(b.high, 0.8, "absent fields keep their defaults");
        let p: BufferPoolConfig = serde_json::from_str(r#"{"classes": [512, 4096]}"#).unwrap();
        assert_eq!(p.classes, [512, 4096]);
        assert_eq!(p.name, "buffers");
        let back: BufferPoolConfig =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        for bad in [r#"{"interval": "5"}"#, r#"{"limit": 5}"#] {
            assert!(serde_json::from_str::<BudgetConfig>(bad).is_err(), "{bad}");
        }
    }
}
