//! A memory budget inside a control group follows the group's limit and working set: the
//! test creates a cgroup of its own (v1's memory hierarchy, as root, where the machine allows
//! it) with a 256 MiB limit, runs a process in it that holds about 216 MiB, and checks the
//! limit, the working set, and that the budget reports high pressure. Where the machine does
//! not allow it, the test says so and the parsed fixtures (unit tests of `cgroup.rs`) stand in.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veza_mempool::{BudgetConfig, Cgroup, MemoryBudget, Pressure};

/// The cgroup and the process in it; both go when dropped, even if an assertion failed.
struct Owned {
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[allow(
    clippy::print_stderr,
    reason = "a test that cannot run here says why in the test output"
)]
fn skip(why: &str) {
    // Not a silent pass: the reason is in the test output.
    eprintln!("budget_follows_a_cgroup: not run here: {why}");
}

#[test]
fn a_budget_on_a_cgroup_follows_its_limit_and_working_set() {
    let Some(own) = Cgroup::current() else {
        return skip("this process is in no readable memory cgroup");
    };
    if !own.dir().join("memory.limit_in_bytes").exists() {
        return skip("no cgroup v1 memory hierarchy (v2 needs a delegated subtree)");
    }
    if Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return skip("no python3 to hold memory in the cgroup");
    }
    let dir = own.dir().join(format!("veza-test-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&dir) {
        return skip(&format!(
            "cannot create a cgroup ({e}): not root, or read-only"
        ));
    }
    let mut owned = Owned {
        dir: dir.clone(),
        child: None,
    };
    let limit: u64 = 256 << 20;
    std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).unwrap();

    // The shell joins the cgroup, then becomes python, which touches 216 MiB and waits.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec python3 -c \"{}\"",
        dir.display(),
        "import sys; b = bytearray(216 << 20); print('ready', flush=True); sys.stdin.read()"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    owned.child = Some(child);
    assert_eq!(line.trim(), "ready");

    let cgroup = Cgroup::at(&dir).unwrap();
    assert_eq!(cgroup.limit().unwrap(), Some(limit));
    let working_set = cgroup.working_set().unwrap();
    assert!(
        working_set >= 200 << 20 && working_set <= limit,
        "working set {} MiB",
        working_set >> 20
    );

    // The budget takes the cgroup's limit; ~85% of it in use is high pressure. (The stall
    // thresholds are set out of reach: this machine's own pressure is not the point here.)
    let mut config = BudgetConfig::default();
    config.stall_high = 1000.0;
    config.stall_critical = 1000.0;
    let budget = MemoryBudget::for_cgroup(&cgroup, &config).unwrap();
    assert_eq!(budget.limit(), limit);
    assert_eq!(budget.sample().unwrap(), Pressure::High);
    // A smaller configured limit wins: then the same usage is critical.
    let mut tight = config.clone();
    tight.limit_bytes = 128 << 20;
    let budget = MemoryBudget::for_cgroup(&cgroup, &tight).unwrap();
    assert_eq!(budget.limit(), 128 << 20);
    assert_eq!(budget.sample().unwrap(), Pressure::Critical);

    // The process lets go; the cgroup goes with `owned`.
    let mut child = owned.child.take().unwrap();
    drop(child.stdin.take().map(|mut s| s.write_all(b"")));
    child.wait().unwrap();
}
