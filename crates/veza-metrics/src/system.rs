//! [`SystemCollector`]: the machine's CPU usage by mode, load, memory, swap, disks, network and
//! filesystems, read from `/proc` (and `statvfs`) at scrape time.

use std::sync::Mutex;

use veza_core::catalog::system as catalog;

use crate::family::{Collector, Family};

/// Reads machine-wide figures. Linux only; elsewhere it reports nothing.
///
/// CPU usage by mode is the share of CPU time between two samples (since boot for the first),
/// so it reflects the scrape interval.
#[derive(Debug, Default)]
pub struct SystemCollector {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buf: String,
    /// CPU times of the previous sample, by mode.
    last_cpu: Option<[u64; 8]>,
}

/// The CPU modes of `/proc/stat`, in its order.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

impl SystemCollector {
    /// A collector for this machine.
    pub fn new() -> SystemCollector {
        SystemCollector::default()
    }

    /// The share of CPU time spent in each mode since the previous call (or since boot), as
    /// `(mode, ratio)`; empty where not supported.
    pub fn cpu_usage(&self) -> Vec<(&'static str, f64)> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cpu_usage(&mut state)
    }
}

impl Collector for SystemCollector {
    fn collect(&self, out: &mut Vec<Family>) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        collect(&mut state, out);
    }
}

#[cfg(not(target_os = "linux"))]
fn cpu_usage(_state: &mut State) -> Vec<(&'static str, f64)> {
    Vec::new()
}

#[cfg(not(target_os = "linux"))]
fn collect(_state: &mut State, _out: &mut Vec<Family>) {}

#[cfg(target_os = "linux")]
fn cpu_usage(state: &mut State) -> Vec<(&'static str, f64)> {
    use crate::procfs::{numbers, read_into};
    if !read_into("/proc/stat", &mut state.buf) {
        return Vec::new();
    }
    let Some(line) = state.buf.lines().find(|l| l.starts_with("cpu ")) else {
        return Vec::new();
    };
    let mut now = [0u64; 8];
    for (slot, v) in now.iter_mut().zip(numbers(&line[4..])) {
        *slot = v;
    }
    let before = state.last_cpu.replace(now).unwrap_or([0; 8]);
    let delta: Vec<u64> = now
        .iter()
        .zip(before)
        .map(|(n, b)| n.saturating_sub(b))
        .collect();
    let total: u64 = delta.iter().sum();
    if total == 0 {
        return MODES.iter().map(|m| (*m, 0.0)).collect();
    }
    MODES
        .iter()
        .zip(delta)
        .map(|(m, d)| (*m, d as f64 / total as f64))
        .collect()
}

#[cfg(target_os = "linux")]
fn collect(state: &mut State, out: &mut Vec<Family>) {
    use crate::procfs::{field, numbers, read_into};

    let mut cpu = Family::new(&catalog::CPU_USAGE);
    for (mode, ratio) in cpu_usage(state) {
        cpu.push(&[mode], ratio);
    }
    out.push(cpu);
    let buf = &mut state.buf;
    if read_into("/proc/stat", buf) {
        if let Some(v) = field(buf, "ctxt") {
            out.push(Family::single(&catalog::CONTEXT_SWITCHES, v as f64));
        }
        if let Some(v) = field(buf, "intr") {
            out.push(Family::single(&catalog::INTERRUPTS, v as f64));
        }
    }
    if read_into("/proc/loadavg", buf) {
        let loads: Vec<f64> = buf
            .split_whitespace()
            .take(3)
            .filter_map(|v| v.parse().ok())
            .collect();
        if loads.len() == 3 {
            out.push(
                Family::new(&catalog::LOAD_AVERAGE)
                    .with(&["1m"], loads[0])
                    .with(&["5m"], loads[1])
                    .with(&["15m"], loads[2]),
            );
        }
    }
    if read_into("/proc/meminfo", buf) {
        let kib = |key| field(buf, key).map(|v| (v * 1024) as f64);
        if let Some(v) = kib("MemTotal") {
            out.push(Family::single(&catalog::MEMORY_TOTAL, v));
        }
        if let Some(v) = kib("MemAvailable") {
            out.push(Family::single(&catalog::MEMORY_AVAILABLE, v));
        }
        if let (Some(total), Some(free)) = (kib("SwapTotal"), kib("SwapFree")) {
            out.push(Family::single(&catalog::SWAP_TOTAL, total));
            out.push(Family::single(&catalog::SWAP_USED, total - free));
        }
    }
    if read_into("/proc/diskstats", buf) {
        let (mut read, mut written, mut reads, mut writes) = (
            Family::new(&catalog::DISK_READ),
            Family::new(&catalog::DISK_WRITTEN),
            Family::new(&catalog::DISK_READS),
            Family::new(&catalog::DISK_WRITES),
        );
        for line in buf.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(&device) = words.get(2) else {
                continue;
            };
            if words.len() < 11 || device.starts_with("loop") || device.starts_with("ram") {
                continue;
            }
            let n: Vec<u64> = numbers(line).collect();
            // Fields 4, 6, 8, 10 of the line: reads, sectors read, writes, sectors written.
            reads.push(&[device], n[3] as f64);
            read.push(&[device], (n[5] * 512) as f64);
            writes.push(&[device], n[7] as f64);
            written.push(&[device], (n[9] * 512) as f64);
        }
        out.extend([read, written, reads, writes]);
    }
    if read_into("/proc/net/dev", buf) {
        let (mut rx, mut tx, mut rxp, mut txp) = (
            Family::new(&catalog::NETWORK_RECEIVED),
            Family::new(&catalog::NETWORK_TRANSMITTED),
            Family::new(&catalog::NETWORK_RECEIVED_PACKETS),
            Family::new(&catalog::NETWORK_TRANSMITTED_PACKETS),
        );
        for line in buf.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let n: Vec<u64> = numbers(rest).collect();
            if n.len() < 10 {
                continue;
            }
            let name = name.trim();
            rx.push(&[name], n[0] as f64);
            rxp.push(&[name], n[1] as f64);
            tx.push(&[name], n[8] as f64);
            txp.push(&[name], n[9] as f64);
        }
        out.extend([rx, tx, rxp, txp]);
    }
    filesystems(buf, out);
}

/// Size and usage of real (block-backed) filesystems, one per device.
#[cfg(target_os = "linux")]
fn filesystems(buf: &mut String, out: &mut Vec<Family>) {
    const REAL: &[&str] = &[
        "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "exfat", "zfs", "f2fs", "ntfs", "ntfs3",
    ];
    if !crate::procfs::read_into("/proc/self/mounts", buf) {
        return;
    }
    let mut size = Family::new(&catalog::FILESYSTEM_SIZE);
    let mut usage = Family::new(&catalog::FILESYSTEM_USAGE);
    let mut seen = Vec::new();
    for line in buf.lines() {
        let mut words = line.split_whitespace();
        let (Some(device), Some(mountpoint), Some(fstype)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if !REAL.contains(&fstype) || seen.contains(&device) {
            continue;
        }
        seen.push(device);
        let Ok(stat) = rustix::fs::statvfs(mountpoint) else {
            continue;
        };
        if stat.f_blocks == 0 {
            continue;
        }
        let total = stat.f_blocks * stat.f_frsize;
        let used_ratio = 1.0 - stat.f_bavail as f64 / stat.f_blocks as f64;
        size.push(&[mountpoint], total as f64);
        usage.push(&[mountpoint], used_ratio.clamp(0.0, 1.0));
    }
    out.extend([size, usage]);
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn cpu_ratios_add_up_to_one() {
        let c = SystemCollector::new();
        let first = c.cpu_usage();
        let sum: f64 = first.iter().map(|(_, r)| r).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{first:?}");
        assert_eq!(first.len(), 8);
    }

    #[test]
    fn the_machine_reports_memory_load_and_network() {
        let mut out = Vec::new();
        SystemCollector::new().collect(&mut out);
        let names: Vec<_> = out
            .iter()
            .filter(|f| !f.is_empty())
            .map(Family::name)
            .collect();
        for expected in [
            "system_cpu_usage_ratio",
            "system_load_average",
            "system_memory_total_bytes",
            "system_memory_available_bytes",
            "system_network_receive_bytes_total",
            "system_context_switches_total",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}
