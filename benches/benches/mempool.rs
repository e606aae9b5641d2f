//! `mempool/*`: veza-mempool's buffer pool against object-pool used raw and against a fresh
//! zeroed vector, and the capacity-hint advice of the crate docs.
//!
//! Every contender gets a 64 KiB buffer, writes 8 bytes into it, and gives it back reset
//! (cleared): veza-mempool resets on return itself, object-pool's caller clears before the
//! guard goes back, the fresh vector is freed.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use veza_benches::{Bench, Case, Contender, Metric};
use veza_mempool::BufferPool;

const SIZE: usize = 64 * 1024;

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("mempool");
    let ops = if bench.quick() { 200_000 } else { 1_000_000 };
    buffer_64k(&bench, ops);
    buffer_64k_2threads(&bench, ops);
    vec_prealloc(&bench);
}

fn veza_pool() -> Arc<BufferPool<Vec<u8>>> {
    Arc::new(BufferPool::new())
}

fn raw_pool() -> Arc<object_pool::Pool<Vec<u8>>> {
    Arc::new(object_pool::Pool::new(64, || Vec::with_capacity(SIZE)))
}

fn use_buffer(b: &mut Vec<u8>) {
    b.extend_from_slice(&black_box(42u64).to_le_bytes());
    black_box(&*b);
}

fn per_op_ns(ops: usize, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn buffer_64k(bench: &Bench, ops: usize) {
    let case = Case::new(
        "mempool/buffer_64k",
        "get a 64 KiB buffer, write 8 bytes, give it back cleared; one thread",
        Metric::Latency,
        "ns",
        "veza-mempool",
    )
    .ops(ops);
    let veza = veza_pool();
    let raw = raw_pool();
    bench.run(
        &case,
        vec![
            Contender::new("veza-mempool", || {
                per_op_ns(ops, || {
                    for _ in 0..ops {
                        use_buffer(&mut veza.get(SIZE));
                    }
                })
            }),
            Contender::new("object-pool", || {
                per_op_ns(ops, || {
                    for _ in 0..ops {
                        let mut b = raw.pull(|| Vec::with_capacity(SIZE));
                        use_buffer(&mut b);
                        b.clear();
                    }
                })
            }),
            Contender::new("fresh-vec", || {
                let ops = ops / 10; // a microsecond each: fewer suffice
                per_op_ns(ops, || {
                    for _ in 0..ops {
                        let mut v = vec![0u8; SIZE];
                        v[..8].copy_from_slice(&black_box(42u64).to_le_bytes());
                        black_box(&v);
                    }
                })
            })
            .ops(ops / 10),
        ],
    );
}

/// Both threads run `ops` cycles on one shared pool; the figure is wall time per cycle of one
/// thread (lower is better).
fn buffer_64k_2threads(bench: &Bench, ops: usize) {
    let case = Case::new(
        "mempool/buffer_64k_2threads",
        "the same cycle from 2 threads sharing one pool, wall time per cycle of a thread",
        Metric::Latency,
        "ns",
        "veza-mempool",
    )
    .ops(2 * ops);
    let veza = veza_pool();
    let raw = raw_pool();
    bench.run(
        &case,
        vec![
            Contender::new("veza-mempool", || {
                two_threads(ops, &veza, |pool| use_buffer(&mut pool.get(SIZE)))
            }),
            Contender::new("object-pool", || {
                two_threads(ops, &raw, |pool| {
                    let mut b = pool.pull(|| Vec::with_capacity(SIZE));
                    use_buffer(&mut b);
                    b.clear();
                })
            }),
        ],
    );
}

fn two_threads<P: Send + Sync + 'static>(ops: usize, pool: &Arc<P>, cycle: fn(&P)) -> f64 {
    let start_line = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (pool, start_line) = (pool.clone(), start_line.clone());
            std::thread::spawn(move || {
                start_line.wait();
                for _ in 0..ops {
                    cycle(&pool);
                }
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("bench thread");
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// The crate docs' advice in numbers: pushing 1,000,000 `u64` into a vector made with
/// `with_capacity` against one that grows by doubling.
fn vec_prealloc(bench: &Bench) {
    let case = Case::new(
        "mempool/vec_prealloc",
        "push 1,000,000 u64 into Vec::with_capacity(n) vs Vec::new()",
        Metric::Latency,
        "ns",
        "with-capacity",
    );
    const N: u64 = 1_000_000;
    bench.run(
        &case,
        vec![
            Contender::new("with-capacity", || {
                per_op_ns(1, || {
                    let mut v = Vec::with_capacity(N as usize);
                    for i in 0..N {
                        v.push(black_box(i));
                    }
                    black_box(&v);
                })
            }),
            Contender::new("grow", || {
                per_op_ns(1, || {
                    let mut v = Vec::new();
                    for i in 0..N {
                        v.push(black_box(i));
                    }
                    black_box(&v);
                })
            }),
        ],
    );
}
