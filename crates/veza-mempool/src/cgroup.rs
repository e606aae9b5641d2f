//! [`Cgroup`]: the memory limit, working set and pressure stall of a Linux control group, so
//! that a budget inside a container follows the container's limit, not the machine's.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::budget::UsageError;

/// The memory controller of a control group: cgroup v2 (`memory.max`, `memory.current`,
/// `memory.pressure`) or v1's memory hierarchy (`memory.limit_in_bytes`,
/// `memory.usage_in_bytes`).
///
/// [`Cgroup::current`] finds the process's own; [`MemoryBudget::for_cgroup`] builds a budget
/// on it.
///
/// [`MemoryBudget::for_cgroup`]: crate::MemoryBudget::for_cgroup
#[derive(Clone, PartialEq, Eq)]
pub struct Cgroup {
    dir: PathBuf,
    version: Version,
    /// For v2: the mount point, where the walk up the ancestors stops.
    root: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Pressure stall information: the share of the last 10 seconds in which some (or all)
/// tasks waited for memory, in percent (`/proc/pressure/memory`, `memory.pressure`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Stall {
    /// Some task stalled on memory, percent of the last 10 s.
    pub some_avg10: f64,
    /// Every task stalled on memory at once, percent of the last 10 s.
    pub full_avg10: f64,
}

/// v1 writes "no limit" as the largest page-aligned value a counter holds.
const V1_UNLIMITED: u64 = 1 << 62;

impl Cgroup {
    /// The memory cgroup of this process, when Linux has one mounted and readable (v1's memory
    /// controller first, as a hybrid machine keeps it there; else v2). `None` elsewhere.
    pub fn current() -> Option<Cgroup> {
        let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let (dir, root) = locate(&membership, &mounts)?;
        Cgroup::with_root(dir, root).ok()
    }

    /// The cgroup whose directory is `dir` (for example one a test created). v2 ancestors are
    /// read up to the directory's mount point.
    pub fn at(dir: impl Into<PathBuf>) -> Result<Cgroup, UsageError> {
        let dir = dir.into();
        let root = mount_point_of(&dir).unwrap_or_else(|| dir.clone());
        Cgroup::with_root(dir, root)
    }

    fn with_root(dir: PathBuf, root: PathBuf) -> Result<Cgroup, UsageError> {
        let version = if dir.join("memory.limit_in_bytes").exists() {
            Version::V1
        } else if dir.join("memory.current").exists() || dir.join("memory.max").exists() {
            Version::V2
        } else {
            return Err(UsageError("not a memory cgroup directory"));
        };
        Ok(Cgroup { dir, version, root })
    }

    /// The directory of the cgroup.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The memory limit that applies to the cgroup (the smallest of its own and its
    /// ancestors'), or `None` when there is none.
    pub fn limit(&self) -> Result<Option<u64>, UsageError> {
        match self.version {
            Version::V1 => {
                let stat = read(&self.dir.join("memory.stat"))?;
                let limit = match stat_value(&stat, "hierarchical_memory_limit") {
                    Some(limit) => limit,
                    None => parse_u64(&read(&self.dir.join("memory.limit_in_bytes"))?)?,
                };
                Ok((limit < V1_UNLIMITED).then_some(limit))
            }
            Version::V2 => {
                let mut limit: Option<u64> = None;
                let mut dir = self.dir.as_path();
                loop {
                    if let Ok(text) = std::fs::read_to_string(dir.join("memory.max")) {
                        let text = text.trim();
                        if text != "max" {
                            let here = parse_u64(text)?;
                            limit = Some(limit.map_or(here, |l| l.min(here)));
                        }
                    }
                    if dir == self.root {
                        break;
                    }
                    match dir.parent() {
                        Some(parent) if parent.starts_with(&self.root) => dir = parent,
                        _ => break,
                    }
                }
                Ok(limit)
            }
        }
    }

    /// The working set: memory charged to the cgroup less the file pages the kernel would
    /// drop first (`inactive_file`), as the kubelet counts it against the limit.
    pub fn working_set(&self) -> Result<u64, UsageError> {
        let (usage, inactive) = match self.version {
            Version::V1 => ("memory.usage_in_bytes", "total_inactive_file"),
            Version::V2 => ("memory.current", "inactive_file"),
        };
        let usage = parse_u64(&read(&self.dir.join(usage))?)?;
        let stat = read(&self.dir.join("memory.stat"))?;
        let inactive = stat_value(&stat, inactive).unwrap_or(0);
        Ok(usage.saturating_sub(inactive))
    }

    /// The memory pressure stall of the cgroup (v2), or of the whole machine
    /// (`/proc/pressure/memory`) when the cgroup has none to show; `None` on kernels without
    /// PSI.
    pub fn stall(&self) -> Option<Stall> {
        let own = (self.version == Version::V2)
            .then(|| std::fs::read_to_string(self.dir.join("memory.pressure")).ok())
            .flatten();
        let text = own.or_else(|| std::fs::read_to_string("/proc/pressure/memory").ok())?;
        parse_stall(&text)
    }
}

impl fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cgroup")
            .field("dir", &self.dir)
            .field("version", &self.version)
            .finish()
    }
}

fn read(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|_| UsageError("a cgroup memory file is not readable"))
}

fn parse_u64(text: &str) -> Result<u64, UsageError> {
    text.trim()
        .parse()
        .map_err(|_| UsageError("a cgroup memory file is malformed"))
}

/// The value of `key` in a `memory.stat` file (`key value` lines).
fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `some avg10=…` and `full avg10=…` of a PSI file.
pub(crate) fn parse_stall(text: &str) -> Option<Stall> {
    let avg10 = |kind: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(kind))?
            .split_whitespace()
            .find_map(|f| f.strip_prefix("avg10="))?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    };
    Some(Stall {
        some_avg10: avg10("some")?,
        // Machine-wide files of old kernels have no `full` line.
        full_avg10: avg10("full").unwrap_or(0.0),
    })
}

/// The directory of this process's memory cgroup and the mount point of its hierarchy, from
/// the texts of `/proc/self/cgroup` and `/proc/self/mountinfo`.
fn locate(membership: &str, mountinfo: &str) -> Option<(PathBuf, PathBuf)> {
    let mut v1 = None;
    let mut v2 = None;
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        } else if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        }
    }
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let (Some(root), Some(mount)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let options = right.nth(1).unwrap_or("");
        let path = match fstype {
            "cgroup" if options.split(',').any(|o| o == "memory") => v1,
            "cgroup2" if v1.is_none() => v2,
            _ => None,
        };
        if let Some(path) = path {
            let relative = path.strip_prefix(root).unwrap_or(path);
            let dir = Path::new(mount).join(relative.trim_start_matches('/'));
            return Some((dir, PathBuf::from(mount)));
        }
    }
    None
}

/// The mount point a cgroup directory sits under (`/proc/self/mountinfo`), if any.
fn mount_point_of(dir: &Path) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(PathBuf::from(left.split(' ').nth(4)?))
        })
        .filter(|m| dir.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree under the system's temporary directory, removed on drop.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new(tag: &str) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("veza-cgroup-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Fixture(dir)
        }

        fn file(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const PSI: &str = "some avg10=12.50 avg60=3.00 avg300=1.00 total=123\n\
                       full avg10=4.25 avg60=1.00 avg300=0.50 total=45\n";

    #[test]
    fn a_v2_cgroup_takes_the_smallest_limit_up_its_ancestors() {
        let f = Fixture::new("v2");
        // root (the mount point) / kubepods (1 GiB) / pod (max) / container (2 GiB)
        f.file("kubepods/memory.max", "1073741824\n");
        f.file("kubepods/pod/memory.max", "max\n");
        f.file("kubepods/pod/ctr/memory.max", "2147483648\n");
        f.file("kubepods/pod/ctr/memory.current", "600000000\n");
        f.file(
            "kubepods/pod/ctr/memory.stat",
            "anon 400000000\nfile 200000000\ninactive_file 150000000\nactive_file 50000000\n",
        );
        f.file("kubepods/pod/ctr/memory.pressure", PSI);
        let cg = Cgroup::with_root(f.0.join("kubepods/pod/ctr"), f.0.clone()).unwrap();
        assert_eq!(cg.limit().unwrap(), Some(1 << 30));
        assert_eq!(cg.working_set().unwrap(), 450_000_000);
        let stall = cg.stall().unwrap();
        assert_eq!((stall.some_avg10, stall.full_avg10), (12.5, 4.25));

        // No limit anywhere.
        f.file("free/memory.max", "max\n");
        f.file("free/memory.current", "10\n");
        f.file("free/memory.stat", "inactive_file 20\n");
        let cg = Cgroup::with_root(f.0.join("free"), f.0.clone()).unwrap();
        assert_eq!(cg.limit().unwrap(), None);
        assert_eq!(cg.working_set().unwrap(), 0, "saturates, never wraps");
    }

    #[test]
    fn memory_stalls_raise_the_pressure_whatever_the_usage() {
        use crate::{BudgetConfig, MemoryBudget, Pressure};
        let f = Fixture::new("psi");
        f.file("app/memory.max", "1000000000\n");
        f.file("app/memory.current", "100000000\n"); // 10% of the limit
        f.file("app/memory.stat", "inactive_file 0\n");
        let cg = Cgroup::with_root(f.0.join("app"), f.0.clone()).unwrap();
        let budget = MemoryBudget::for_cgroup(&cg, &BudgetConfig::default()).unwrap();
        assert_eq!(budget.limit(), 1_000_000_000);
        for (psi, expected) in [
            (
                "some avg10=0.00 avg60=0 avg300=0 total=0\nfull avg10=0.00 avg60=0 avg300=0 total=0\n",
                Pressure::Normal,
            ),
            (PSI, Pressure::High), // some 12.5 >= 10
            (
                "some avg10=40.00 avg60=0 avg300=0 total=9\nfull avg10=25.00 avg60=0 avg300=0 total=9\n",
                Pressure::Critical,
            ),
        ] {
            f.file("app/memory.pressure", psi);
            assert_eq!(budget.sample().unwrap(), expected, "{psi}");
        }
        // No limit in the cgroup and none configured: refused, with the reason.
        f.file("open/memory.max", "max\n");
        f.file("open/memory.current", "1\n");
        let open = Cgroup::with_root(f.0.join("open"), f.0.clone()).unwrap();
        let err = MemoryBudget::for_cgroup(&open, &BudgetConfig::default()).unwrap_err();
        assert!(err.to_string().contains("no memory limit"), "{err}");
    }

    #[test]
    fn a_v1_cgroup_reads_the_hierarchical_limit() {
        let f = Fixture::new("v1");
        f.file("memory.limit_in_bytes", "9223372036854771712\n");
        f.file("memory.usage_in_bytes", "300000000\n");
        f.file(
            "memory.stat",
            "cache 1\ninactive_file 9\nhierarchical_memory_limit 536870912\ntotal_inactive_file 100000000\n",
        );
        let cg = Cgroup::at(f.0.clone()).unwrap();
        assert_eq!(cg.limit().unwrap(), Some(512 << 20));
        assert_eq!(cg.working_set().unwrap(), 200_000_000);
        f.file(
            "memory.stat",
            "hierarchical_memory_limit 9223372036854771712\n",
        );
        assert_eq!(cg.limit().unwrap(), None, "v1's no-limit value");
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let f = Fixture::new("bad");
        assert!(Cgroup::at(f.0.clone()).is_err(), "no memory files");
        f.file("memory.max", "lots\n");
        f.file("memory.current", "-1\n");
        f.file("memory.stat", "inactive_file x\n");
        let cg = Cgroup::with_root(f.0.clone(), f.0.clone()).unwrap();
        assert!(cg.limit().is_err());
        assert!(cg.working_set().is_err());
        for text in [
            "",
            "some avg10=NaN\n",
            "some avg10=abc\n",
            "full avg10=1.0\n",
        ] {
            assert_eq!(parse_stall(text), None, "{text:?}");
        }
        let old = parse_stall("some avg10=1.50 avg60=0 avg300=0 total=1\n").unwrap();
        assert_eq!((old.some_avg10, old.full_avg10), (1.5, 0.0));
    }

    #[test]
    fn the_process_cgroup_is_located_from_proc_texts() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let hybrid = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
        assert_eq!(
            locate(hybrid, mountinfo),
            Some((
                PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"),
                PathBuf::from("/sys/fs/cgroup/memory")
            ))
        );
        let pure_v2 = "0::/system.slice/app.service\n";
        let v2_mounts = "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            locate(pure_v2, v2_mounts),
            Some((
                PathBuf::from("/sys/fs/cgroup/system.slice/app.service"),
                PathBuf::from("/sys/fs/cgroup")
            ))
        );
        // A cgroup namespace: the container sees its own cgroup as the root.
        let ns_mounts = "30 23 0:27 /../.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            locate("0::/\n", ns_mounts).map(|(d, _)| d),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(locate("", mountinfo), None);
        assert_eq!(locate("garbage", "also garbage"), None);
    }
}
