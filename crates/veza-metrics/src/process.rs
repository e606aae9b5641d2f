//! [`ProcessCollector`]: this process's CPU time, memory, file descriptors, threads, start
//! time, page faults, context switches and I/O, read from `/proc/self` at scrape time.

use std::sync::Mutex;

use veza_core::catalog::process as catalog;

use crate::family::{Collector, Family};

/// The figures of one sample, in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ProcessSample {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// OS threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors (`None` where not readable).
    pub open_fds: Option<u64>,
    /// The open-file limit.
    pub max_fds: Option<u64>,
    /// The address-space limit (`None` when unlimited).
    pub virtual_max_bytes: Option<u64>,
    /// Minor and major page faults.
    pub page_faults: (u64, u64),
    /// Voluntary and involuntary context switches.
    pub context_switches: (u64, u64),
    /// Bytes read and written from storage (`None` where `/proc/self/io` is not readable).
    pub io_bytes: Option<(u64, u64)>,
}

/// Reads this process's figures. Linux only; elsewhere every sample is empty.
#[derive(Debug)]
pub struct ProcessCollector {
    /// Clock ticks per second, page size and boot time: read once.
    #[cfg(target_os = "linux")]
    constants: Option<linux::Constants>,
    buf: Mutex<String>,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        ProcessCollector::new()
    }
}

impl ProcessCollector {
    /// A collector for the current process.
    pub fn new() -> ProcessCollector {
        ProcessCollector {
            #[cfg(target_os = "linux")]
            constants: linux::Constants::read(),
            buf: Mutex::new(String::with_capacity(4096)),
        }
    }

    /// Reads the figures now; `None` where the platform offers none.
    pub fn sample(&self) -> Option<ProcessSample> {
        let mut buf = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        #[cfg(target_os = "linux")]
        {
            linux::sample(self.constants.as_ref()?, &mut buf)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = &mut buf;
            None
        }
    }
}

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut Vec<Family>) {
        let Some(s) = self.sample() else { return };
        out.push(Family::single(&catalog::CPU_SECONDS, s.cpu_seconds));
        out.push(Family::single(
            &catalog::RESIDENT_MEMORY,
            s.resident_bytes as f64,
        ));
        out.push(Family::single(
            &catalog::VIRTUAL_MEMORY,
            s.virtual_bytes as f64,
        ));
        if let Some(max) = s.virtual_max_bytes {
            out.push(Family::single(&catalog::VIRTUAL_MEMORY_MAX, max as f64));
        }
        out.push(Family::single(&catalog::THREADS, s.threads as f64));
        out.push(Family::single(&catalog::START_TIME, s.start_time_seconds));
        if let Some(fds) = s.open_fds {
            out.push(Family::single(&catalog::OPEN_FDS, fds as f64));
        }
        if let Some(max) = s.max_fds {
            out.push(Family::single(&catalog::MAX_FDS, max as f64));
        }
        out.push(
            Family::new(&catalog::PAGE_FAULTS)
                .with(&["minor"], s.page_faults.0 as f64)
                .with(&["major"], s.page_faults.1 as f64),
        );
        out.push(
            Family::new(&catalog::CONTEXT_SWITCHES)
                .with(&["voluntary"], s.context_switches.0 as f64)
                .with(&["involuntary"], s.context_switches.1 as f64),
        );
        if let Some((read, written)) = s.io_bytes {
            out.push(Family::single(&catalog::IO_READ, read as f64));
            out.push(Family::single(&catalog::IO_WRITTEN, written as f64));
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::ProcessSample;
    use crate::procfs::{ProcFile, field, numbers, read_into};

    #[derive(Debug)]
    pub(super) struct Constants {
        ticks: f64,
        page: u64,
        boot_time: u64,
        stat: ProcFile,
        io: ProcFile,
    }

    impl Constants {
        pub(super) fn read() -> Option<Constants> {
            let mut buf = String::new();
            read_into("/proc/stat", &mut buf).then_some(())?;
            Some(Constants {
                ticks: rustix::param::clock_ticks_per_second() as f64,
                page: rustix::param::page_size() as u64,
                boot_time: field(&buf, "btime")?,
                stat: ProcFile::open("/proc/self/stat"),
                io: ProcFile::open("/proc/self/io"),
            })
        }
    }

    pub(super) fn sample(c: &Constants, buf: &mut String) -> Option<ProcessSample> {
        let mut s = ProcessSample::default();
        // /proc/self/stat: fields after the command name, which ends at the last ')'.
        c.stat.read_into(buf).then_some(())?;
        let after = &buf[buf.rfind(')')? + 2..];
        let f: Vec<u64> = numbers(after).collect();
        // Field n of proc(5) is f[n - 3].
        let at = |n: usize| f.get(n - 3).copied().unwrap_or(0);
        s.cpu_seconds = (at(14) + at(15)) as f64 / c.ticks;
        s.threads = at(20);
        s.start_time_seconds = c.boot_time as f64 + at(22) as f64 / c.ticks;
        s.virtual_bytes = at(23);
        s.resident_bytes = at(24) * c.page;

        // Page faults and context switches of every thread, live or ended: getrusage is a
        // syscall where /proc/self/status is a page of text, and the switches there count
        // the main thread only.
        if let Ok(usage) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        {
            let count = |n: std::ffi::c_long| u64::try_from(n).unwrap_or(0);
            s.page_faults = (
                count(usage.minor_page_faults()),
                count(usage.major_page_faults()),
            );
            s.context_switches = (
                count(usage.voluntary_context_switches()),
                count(usage.involuntary_context_switches()),
            );
        }
        if c.io.read_into(buf) {
            s.io_bytes = field(buf, "read_bytes").zip(field(buf, "write_bytes"));
        }
        s.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        s.max_fds = nofile.current;
        s.virtual_max_bytes = rustix::process::getrlimit(rustix::process::Resource::As).current;
        Some(s)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_sample_has_plausible_figures() {
        let s = ProcessCollector::new().sample().unwrap();
        assert!(s.resident_bytes > 1 << 20 && s.resident_bytes < 1 << 40);
        assert!(s.virtual_bytes >= s.resident_bytes);
        assert!(s.threads >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds > now - 3600.0 && s.start_time_seconds <= now + 1.0);
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
        assert!(
            s.page_faults.0 > 0,
            "a process that allocated has minor faults"
        );
        // A thread that sleeps switches voluntarily; an ended thread's switches still count.
        let before = s.context_switches.0;
        std::thread::spawn(|| {
            for _ in 0..5 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .join()
        .unwrap();
        let after = ProcessCollector::new().sample().unwrap().context_switches.0;
        assert!(after >= before + 5, "{before} then {after}");
    }
}
