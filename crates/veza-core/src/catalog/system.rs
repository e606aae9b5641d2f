//! Metrics of the whole machine: CPU, load, memory, swap, disks, filesystems and network.

use super::{Group::System as G, MetricDef, Unit};

/// CPU time share by mode over the last sampling interval.
pub const CPU_USAGE: MetricDef = MetricDef::gauge(
    G,
    "system_cpu_usage_ratio",
    Unit::Ratio,
    "Share of CPU time spent in each mode over the last sampling interval, all CPUs together.",
)
.with_labels(&["mode"])
.with_guide_name("cpu_usage_percent");

/// Load averages, `window` = `1m`, `5m` or `15m`.
pub const LOAD_AVERAGE: MetricDef = MetricDef::gauge(
    G,
    "system_load_average",
    Unit::Count,
    "Run-queue load average over the window.",
)
.with_labels(&["window"])
.with_guide_name("cpu_load_average");

/// Context switches of the whole machine.
pub const CONTEXT_SWITCHES: MetricDef = MetricDef::counter(
    G,
    "system_context_switches_total",
    Unit::Count,
    "Context switches of all CPUs since boot.",
)
.with_guide_name("cpu_context_switches");

/// Interrupts serviced.
pub const INTERRUPTS: MetricDef = MetricDef::counter(
    G,
    "system_interrupts_total",
    Unit::Count,
    "Interrupts serviced since boot.",
)
.with_guide_name("cpu_interrupts");

/// Physical memory.
pub const MEMORY_TOTAL: MetricDef = MetricDef::gauge(
    G,
    "system_memory_total_bytes",
    Unit::Bytes,
    "Physical memory in bytes.",
);

/// Memory available for new work without swapping.
pub const MEMORY_AVAILABLE: MetricDef = MetricDef::gauge(
    G,
    "system_memory_available_bytes",
    Unit::Bytes,
    "Memory available for starting new applications without swapping, in bytes.",
)
.with_guide_name("memory_available_bytes");

/// Swap space.
pub const SWAP_TOTAL: MetricDef = MetricDef::gauge(
    G,
    "system_swap_total_bytes",
    Unit::Bytes,
    "Swap space in bytes.",
);

/// Swap space in use.
pub const SWAP_USED: MetricDef = MetricDef::gauge(
    G,
    "system_swap_used_bytes",
    Unit::Bytes,
    "Swap space in use, in bytes.",
)
.with_guide_name("memory_swap_usage");

/// Bytes read per block device.
pub const DISK_READ: MetricDef = MetricDef::counter(
    G,
    "system_disk_read_bytes_total",
    Unit::Bytes,
    "Bytes read from the block device.",
)
.with_labels(&["device"])
.with_guide_name("disk_io_read_bytes");

/// Bytes written per block device.
pub const DISK_WRITTEN: MetricDef = MetricDef::counter(
    G,
    "system_disk_written_bytes_total",
    Unit::Bytes,
    "Bytes written to the block device.",
)
.with_labels(&["device"])
.with_guide_name("disk_io_write_bytes");

/// Completed reads per block device.
pub const DISK_READS: MetricDef = MetricDef::counter(
    G,
    "system_disk_reads_completed_total",
    Unit::Count,
    "Read operations completed by the block device.",
)
.with_labels(&["device"])
.with_guide_name("disk_io_ops");

/// Completed writes per block device.
pub const DISK_WRITES: MetricDef = MetricDef::counter(
    G,
    "system_disk_writes_completed_total",
    Unit::Count,
    "Write operations completed by the block device.",
)
.with_labels(&["device"])
.with_guide_name("disk_io_ops");

/// Filesystem size.
pub const FILESYSTEM_SIZE: MetricDef = MetricDef::gauge(
    G,
    "system_filesystem_size_bytes",
    Unit::Bytes,
    "Size of the filesystem in bytes.",
)
.with_labels(&["mountpoint"]);

/// Filesystem space in use as a share of its size.
pub const FILESYSTEM_USAGE: MetricDef = MetricDef::gauge(
    G,
    "system_filesystem_usage_ratio",
    Unit::Ratio,
    "Share of the filesystem's space in use.",
)
.with_labels(&["mountpoint"])
.with_guide_name("disk_usage_percent");

/// Bytes received per interface.
pub const NETWORK_RECEIVED: MetricDef = MetricDef::counter(
    G,
    "system_network_receive_bytes_total",
    Unit::Bytes,
    "Bytes received on the network interface.",
)
.with_labels(&["interface"])
.with_guide_name("network_bytes_received");

/// Bytes sent per interface.
pub const NETWORK_TRANSMITTED: MetricDef = MetricDef::counter(
    G,
    "system_network_transmit_bytes_total",
    Unit::Bytes,
    "Bytes sent on the network interface.",
)
.with_labels(&["interface"])
.with_guide_name("network_bytes_sent");

/// Packets received per interface.
pub const NETWORK_RECEIVED_PACKETS: MetricDef = MetricDef::counter(
    G,
    "system_network_receive_packets_total",
    Unit::Count,
    "Packets received on the network interface.",
)
.with_labels(&["interface"])
.with_guide_name("network_packets_received");

/// Packets sent per interface.
pub const NETWORK_TRANSMITTED_PACKETS: MetricDef = MetricDef::counter(
    G,
    "system_network_transmit_packets_total",
    Unit::Count,
    "Packets sent on the network interface.",
)
.with_labels(&["interface"])
.with_guide_name("network_packets_sent");

/// Every system metric.
pub const ALL: &[MetricDef] = &[
    CPU_USAGE,
    LOAD_AVERAGE,
    CONTEXT_SWITCHES,
    INTERRUPTS,
    MEMORY_TOTAL,
    MEMORY_AVAILABLE,
    SWAP_TOTAL,
    SWAP_USED,
    DISK_READ,
    DISK_WRITTEN,
    DISK_READS,
    DISK_WRITES,
    FILESYSTEM_SIZE,
    FILESYSTEM_USAGE,
    NETWORK_RECEIVED,
    NETWORK_TRANSMITTED,
    NETWORK_RECEIVED_PACKETS,
    NETWORK_TRANSMITTED_PACKETS,
];
