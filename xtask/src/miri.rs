//! `cargo xtask miri`: the unit tests of the crates with `unsafe` code or lock-free parts,
//! under miri (needs the nightly toolchain with its `miri` and `rust-src` components).

use anyhow::{Context, Result};

use crate::util;

/// Runs miri on the unit tests of veza-mempool (the counting allocator) and veza-workers (the
/// queue and its atomics), the counting allocator's and the private slots' integration tests, and the workers' full-queue
/// and async-submission tests (the suites with a million jobs are too slow under miri).
pub(crate) fn run() -> Result<()> {
    let miri = |args: &[&str]| {
        // Through rustup: `$CARGO` (what `util::cargo` runs) is the stable toolchain's own
        // cargo binary, which does not take `+nightly`.
        let mut cmd = std::process::Command::new("rustup");
        cmd.current_dir(util::root());
        util::run(
            cmd.args(["run", "nightly", "cargo", "miri", "test"])
                .env_remove("CARGO")
                .env_remove("RUSTC")
                .args(args)
                // The budget test reads /proc/self/statm: allow real file access.
                .env("MIRIFLAGS", "-Zmiri-disable-isolation"),
        )
        .context("miri failed (install it with `rustup component add --toolchain nightly miri rust-src`)")
    };
    miri(&["-p", "veza-mempool", "--lib"])?;
    miri(&[
        "-p",
        "veza-mempool",
        "--test",
        "counting_allocator_counts_the_heap",
        // The private slots are reached through raw pointers: drops that re-enter pools while
        // slots are swept or the thread ends.
        "--test",
        "private_slots_keep_the_cap_and_the_counts",
    ])?;
    miri(&["-p", "veza-workers", "--lib"])?;
    miri(&[
        "-p",
        "veza-workers",
        "--test",
        "full_queue_returns_the_job",
        "--test",
        "async_submit_does_not_block_the_runtime",
    ])
}
