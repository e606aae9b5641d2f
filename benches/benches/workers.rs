//! `workers/*`: veza-workers against rayon, threadpool, the Rust book's pool, the guide's
//! dispatcher design, and a bare crossbeam-channel pool (the floor).
//!
//! Every pool has 2 worker threads and is created before the timer starts; the timer covers
//! submitting the jobs from one thread and waiting until all have run, each pool's own way
//! (join, scope). Bounded queues are 1000 deep, the guide's size.

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use veza_benches::{Bench, Case, Contender, Metric};
use veza_workers::{Priority, WorkerPool};

const WORKERS: usize = 2;
const CAPACITY: usize = 1000;

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("workers");
    tiny_jobs(&bench);
    idle_latency(&bench);
    priority_latency(&bench);
}

fn veza_pool(capacity: usize) -> WorkerPool {
    WorkerPool::builder()
        .name("bench")
        .workers(WORKERS)
        .capacity(capacity)
        .build()
        .expect("pool")
}

fn rate(jobs: usize, elapsed: Duration) -> f64 {
    jobs as f64 / elapsed.as_secs_f64()
}

fn tiny_jobs(bench: &Bench) {
    let case = Case::new(
        "workers/tiny_jobs",
        "no-op jobs on 2 workers submitted from one thread, until all have run (seed-port runs 1/50 as many: it spawns a thread per job)",
        Metric::Throughput,
        "jobs/s",
        "veza-workers",
    );
    let n = if bench.quick() { 200_000 } else { 1_000_000 };
    let case = case.ops(n);
    bench.run(
        &case,
        vec![
            Contender::new("veza-workers", || {
                let pool = veza_pool(CAPACITY);
                let start = Instant::now();
                for _ in 0..n {
                    pool.execute(|| black_box(())).expect("accepted");
                }
                pool.shutdown();
                rate(n, start.elapsed())
            }),
            Contender::new("rayon", || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(WORKERS)
                    .build()
                    .expect("rayon pool");
                let start = Instant::now();
                // in_place_scope: this thread submits, the pool's workers run, and the scope
                // waits for every job: rayon's own way to wait for spawned work.
                pool.in_place_scope(|s| {
                    for _ in 0..n {
                        s.spawn(|_| black_box(()));
                    }
                });
                rate(n, start.elapsed())
            }),
            Contender::new("threadpool", || {
                let pool = threadpool::ThreadPool::new(WORKERS);
                let start = Instant::now();
                for _ in 0..n {
                    pool.execute(|| black_box(()));
                }
                pool.join();
                rate(n, start.elapsed())
            }),
            Contender::new("book-pool", || {
                let pool = book_pool::ThreadPool::new(WORKERS);
                let start = Instant::now();
                for _ in 0..n {
                    pool.execute(|| black_box(()));
                }
                drop(pool);
                rate(n, start.elapsed())
            }),
            Contender::new("seed-port", || {
                let jobs = n / 50;
                let pool = seed_port::WorkerPool::start(WORKERS);
                let start = Instant::now();
                for _ in 0..jobs {
                    pool.submit(Box::new(|| black_box(())));
                }
                pool.wait_and_stop(jobs);
                rate(jobs, start.elapsed())
            })
            .ops(n / 50),
            Contender::new("crossbeam-minimal", || {
                let pool = minimal::Pool::new(WORKERS, CAPACITY);
                let start = Instant::now();
                for _ in 0..n {
                    pool.execute(Box::new(|| black_box(())));
                }
                drop(pool);
                rate(n, start.elapsed())
            }),
        ],
    );
}

/// Submit-to-start latency on an idle pool: the median of `probes` jobs, each submitted after
/// the workers have had 2 ms to go to sleep.
fn idle_latency(bench: &Bench) {
    let case = Case::new(
        "workers/idle_latency",
        "submit-to-start latency of one job on an idle 2-worker pool, median of 100 probes",
        Metric::Latency,
        "ns",
        "veza-workers",
    );
    let probes = if bench.quick() { 40 } else { 100 };
    let case = case.ops(probes);
    let veza = veza_pool(CAPACITY);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("rayon pool");
    let threadpool = threadpool::ThreadPool::new(WORKERS);
    bench.run(
        &case,
        vec![
            Contender::new("veza-workers", || {
                median_latency(probes, |tx| {
                    veza.execute(move || tx.send(Instant::now()).expect("probe"))
                        .expect("accepted");
                })
            }),
            Contender::new("rayon", || {
                median_latency(probes, |tx| {
                    rayon.spawn(move || tx.send(Instant::now()).expect("probe"));
                })
            }),
            Contender::new("threadpool", || {
                median_latency(probes, |tx| {
                    threadpool.execute(move || tx.send(Instant::now()).expect("probe"));
                })
            }),
        ],
    );
}

fn median_latency(probes: usize, mut submit: impl FnMut(mpsc::Sender<Instant>)) -> f64 {
    let mut latencies: Vec<f64> = (0..probes)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(2));
            let (tx, rx) = mpsc::channel();
            let submitted = Instant::now();
            submit(tx);
            let started = rx.recv().expect("probe ran");
            started.duration_since(submitted).as_nanos() as f64
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies[latencies.len() / 2]
}

/// Start latency of one job submitted right after 10,000 low-priority jobs (about 1 µs of work
/// each) were queued behind blocked workers and the workers released: at high priority, and at
/// the same priority as the backlog.
fn priority_latency(bench: &Bench) {
    let case = Case::new(
        "workers/priority_latency",
        "start latency of a job behind 10,000 queued low-priority jobs of ~1 µs, median of 5",
        Metric::Latency,
        "ns",
        "veza-workers",
    );
    let pool = veza_pool(20_000);
    bench.run(
        &case,
        vec![
            Contender::new("veza-workers", || behind_backlog(&pool, Priority::High)),
            Contender::new("veza-workers-no-priority", || {
                behind_backlog(&pool, Priority::Low)
            }),
        ],
    );
}

fn behind_backlog(pool: &WorkerPool, probe: Priority) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let (release, gate) = crossbeam_channel::bounded::<()>(0);
            for _ in 0..WORKERS {
                let gate = gate.clone();
                pool.priority(Priority::High)
                    .execute(move || {
                        let _ = gate.recv();
                    })
                    .expect("accepted");
            }
            while pool_busy(pool) < WORKERS {
                std::thread::yield_now();
            }
            for _ in 0..10_000 {
                pool.priority(Priority::Low)
                    .execute(|| spin(Duration::from_micros(1)))
                    .expect("accepted");
            }
            drop(release); // both workers start on the backlog
            let (tx, rx) = mpsc::channel();
            let submitted = Instant::now();
            pool.priority(probe)
                .execute(move || tx.send(Instant::now()).expect("probe"))
                .expect("accepted");
            let started = rx.recv().expect("probe ran");
            while pool_busy(pool) > 0 || veza_core::Observe::snapshot(pool).depth > 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            started.duration_since(submitted).as_nanos() as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn pool_busy(pool: &WorkerPool) -> usize {
    veza_core::Observe::snapshot(pool).busy as usize
}

fn spin(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// The Rust book's pool (chapter 20): workers share a `Mutex<mpsc::Receiver>`.
mod book_pool {
    use std::sync::{Arc, Mutex, mpsc};
    use std::thread;

    type Job = Box<dyn FnOnce() + Send + 'static>;

    pub(crate) struct ThreadPool {
        workers: Vec<thread::JoinHandle<()>>,
        sender: Option<mpsc::Sender<Job>>,
    }

    impl ThreadPool {
        pub(crate) fn new(size: usize) -> ThreadPool {
            let (sender, receiver) = mpsc::channel::<Job>();
            let receiver = Arc::new(Mutex::new(receiver));
            let workers = (0..size)
                .map(|_| {
                    let receiver = Arc::clone(&receiver);
                    thread::spawn(move || {
                        loop {
                            let message = receiver.lock().expect("lock").recv();
                            match message {
                                Ok(job) => job(),
                                Err(_) => break,
                            }
                        }
                    })
                })
                .collect();
            ThreadPool {
                workers,
                sender: Some(sender),
            }
        }

        pub(crate) fn execute(&self, f: impl FnOnce() + Send + 'static) {
            self.sender
                .as_ref()
                .expect("open")
                .send(Box::new(f))
                .expect("workers alive");
        }
    }

    impl Drop for ThreadPool {
        fn drop(&mut self) {
            drop(self.sender.take());
            for worker in self.workers.drain(..) {
                worker.join().expect("worker");
            }
        }
    }
}

/// The guide's design ported literally: a 1000-deep job queue, a dispatcher that starts a
/// goroutine (here a thread) per job to wait for a free worker's channel, and workers that
/// hand their channel back after each job.
mod seed_port {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use crossbeam_channel::{Receiver, Sender, bounded, select};

    pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

    pub(crate) struct WorkerPool {
        job_queue: Sender<Job>,
        quit: Sender<()>,
        done: Arc<AtomicUsize>,
        threads: Vec<thread::JoinHandle<()>>,
    }

    impl WorkerPool {
        pub(crate) fn start(workers: usize) -> WorkerPool {
            let (job_queue, jobs) = bounded::<Job>(1000);
            let (worker_pool_tx, worker_pool) = bounded::<Sender<Job>>(workers);
            let (quit, quit_rx) = bounded::<()>(0);
            let done = Arc::new(AtomicUsize::new(0));
            let mut threads = Vec::new();
            for _ in 0..workers {
                let (pool_tx, quit_rx, done) =
                    (worker_pool_tx.clone(), quit_rx.clone(), done.clone());
                threads.push(thread::spawn(move || worker(&pool_tx, &quit_rx, &done)));
            }
            threads.push(thread::spawn(move || {
                dispatcher(&jobs, &worker_pool, &quit_rx);
            }));
            WorkerPool {
                job_queue,
                quit,
                done,
                threads,
            }
        }

        pub(crate) fn submit(&self, job: Job) {
            self.job_queue.send(job).expect("dispatcher alive");
        }

        /// Waits until `n` jobs have run, then stops the threads.
        pub(crate) fn wait_and_stop(self, n: usize) {
            while self.done.load(Ordering::Acquire) < n {
                thread::yield_now();
            }
            drop(self.quit);
            for t in self.threads {
                t.join().expect("thread");
            }
        }
    }

    fn worker(pool: &Sender<Sender<Job>>, quit: &Receiver<()>, done: &AtomicUsize) {
        let (job_tx, job_rx) = bounded::<Job>(0);
        if pool.send(job_tx.clone()).is_err() {
            return;
        }
        loop {
            select! {
                recv(job_rx) -> job => {
                    let Ok(job) = job else { return };
                    job();
                    done.fetch_add(1, Ordering::Release);
                    if pool.send(job_tx.clone()).is_err() {
                        return;
                    }
                }
                recv(quit) -> _ => return,
            }
        }
    }

    fn dispatcher(jobs: &Receiver<Job>, pool: &Receiver<Sender<Job>>, quit: &Receiver<()>) {
        loop {
            select! {
                recv(jobs) -> job => {
                    let Ok(job) = job else { return };
                    let pool = pool.clone();
                    thread::spawn(move || {
                        if let Ok(worker) = pool.recv() {
                            let _ = worker.send(job);
                        }
                    });
                }
                recv(quit) -> _ => return,
            }
        }
    }
}

/// The floor: a bare crossbeam-channel pool (bounded queue, workers loop on `recv`), with no
/// priorities, panic safety or metrics.
mod minimal {
    use std::thread;

    use crossbeam_channel::{Sender, bounded};

    type Job = Box<dyn FnOnce() + Send + 'static>;

    pub(crate) struct Pool {
        sender: Option<Sender<Job>>,
        workers: Vec<thread::JoinHandle<()>>,
    }

    impl Pool {
        pub(crate) fn new(workers: usize, capacity: usize) -> Pool {
            let (sender, receiver) = bounded::<Job>(capacity);
            let workers = (0..workers)
                .map(|_| {
                    let receiver = receiver.clone();
                    thread::spawn(move || {
                        for job in receiver {
                            job();
                        }
                    })
                })
                .collect();
            Pool {
                sender: Some(sender),
                workers,
            }
        }

        pub(crate) fn execute(&self, job: Job) {
            self.sender
                .as_ref()
                .expect("open")
                .send(job)
                .expect("workers alive");
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            drop(self.sender.take());
            for w in self.workers.drain(..) {
                w.join().expect("worker");
            }
        }
    }
}
