//! `cache/*`: veza-cache against moka, quick_cache, the guide's `RwLock<HashMap>` and lru, and
//! the sorted index against `slice::binary_search`.
//!
//! Peers are set up as their docs recommend: moka's sync cache with `max_capacity`, quick_cache
//! with its default hasher, std's `HashMap` (SipHash) behind `std::sync::RwLock`, `lru` with its
//! capacity. Keys are `u64`, values `u64`.

use std::collections::{BinaryHeap, HashMap};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Barrier, RwLock};
use std::time::Instant;

use veza_benches::{Bench, Case, Contender, Metric, SplitMix64, zipf_keys};
use veza_cache::{Cache, SortedIndex};

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("cache");
    hit_read(&bench);
    zipf_hit_ratio(&bench);
    scan_mix_hit_ratio(&bench);
    shifting_hit_ratio(&bench);
    replay_get_insert(&bench);
    sorted_search(&bench);
    policy_table(&bench);
}

/// 100% hits on 100,000 entries from 2 threads; total lookups per second.
fn hit_read(bench: &Bench) {
    const ENTRIES: u64 = 100_000;
    let case = Case::new(
        "cache/hit_read",
        "lookups that all hit, 100,000 entries, 2 threads, random keys",
        Metric::Throughput,
        "lookups/s",
        "veza-cache",
    );
    if !bench.wants(case.id()) {
        return;
    }
    let per_thread = if bench.quick() { 1_000_000 } else { 4_000_000 };
    let case = case.ops(2 * per_thread);
    let mut rng = SplitMix64::new(7);
    let keys: Arc<Vec<u64>> = Arc::new((0..per_thread).map(|_| rng.next_u64() % ENTRIES).collect());

    // A `Cache` is a cheap handle (one `Arc`), cloned into each thread like moka's.
    let veza = Cache::<u64, u64>::new(ENTRIES * 2).expect("cache");
    let moka = moka::sync::Cache::<u64, u64>::new(ENTRIES * 2);
    let quick = Arc::new(quick_cache::sync::Cache::<u64, u64>::new(
        (ENTRIES * 2) as usize,
    ));
    let guide = Arc::new(RwLock::new(HashMap::<u64, u64>::new()));
    for k in 0..ENTRIES {
        veza.insert(k, k);
        moka.insert(k, k);
        quick.insert(k, k);
        guide.write().expect("lock").insert(k, k);
    }
    moka.run_pending_tasks();
    bench.run(
        &case,
        vec![
            Contender::new("veza-cache", || {
                let c = veza.clone();
                two_threads(&keys, move |k| c.get(&k))
            }),
            Contender::new("moka", || {
                let c = moka.clone();
                two_threads(&keys, move |k| c.get(&k))
            }),
            Contender::new("quick_cache", || {
                let c = quick.clone();
                two_threads(&keys, move |k| c.get(&k))
            }),
            Contender::new("rwlock-hashmap", || {
                let c = guide.clone();
                two_threads(&keys, move |k| c.read().expect("lock").get(&k).copied())
            }),
        ],
    );
}

fn two_threads(
    keys: &Arc<Vec<u64>>,
    get: impl Fn(u64) -> Option<u64> + Clone + Send + 'static,
) -> f64 {
    let start_line = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let (keys, start_line, get) = (keys.clone(), start_line.clone(), get.clone());
            std::thread::spawn(move || {
                start_line.wait();
                let mut found = 0u64;
                // The two threads walk the keys from different ends.
                for i in 0..keys.len() {
                    let k = keys[if t == 0 { i } else { keys.len() - 1 - i }];
                    found += u64::from(black_box(get(k)).is_some());
                }
                assert_eq!(found, keys.len() as u64, "every lookup must hit");
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("bench thread");
    }
    (keys.len() * 2) as f64 / start.elapsed().as_secs_f64()
}

/// Hit ratio of a capacity-10,000 cache under Zipf(0.99) requests over 1,000,000 keys, filling
/// on every miss.
fn zipf_hit_ratio(bench: &Bench) {
    let Some((case, requests)) = ratio_case(
        bench,
        "cache/zipf_hit_ratio",
        "hit ratio, Zipf(0.99) requests over 1,000,000 keys, capacity 10,000, insert on miss",
    ) else {
        return;
    };
    let keys = zipf_keys(1_000_000, 0.99, requests, 1);
    hit_ratios(bench, &case, &keys);
}

/// Keys of a loop over 1.2x the capacity, far from the Zipf keys.
const LOOP_BASE: u64 = 1 << 40;
/// Keys of the sliding working set, far from both.
const WINDOW_BASE: u64 = 1 << 41;

/// Half a cyclic scan over 1.2x the capacity (which LRU and plain FIFO keep missing), half
/// Zipf(0.99) over 1,000,000 keys, interleaved: the shape an admission filter is for.
fn scan_mix_hit_ratio(bench: &Bench) {
    let Some((case, requests)) = ratio_case(
        bench,
        "cache/scan_mix_hit_ratio",
        "hit ratio, capacity 10,000: half a cyclic scan over 12,000 keys, half Zipf(0.99) over 1,000,000 keys, interleaved, insert on miss",
    ) else {
        return;
    };
    let zipf = zipf_keys(1_000_000, 0.99, requests / 2, 5);
    let keys: Vec<u64> = zipf
        .iter()
        .enumerate()
        .flat_map(|(i, &z)| [LOOP_BASE + (i as u64 % 12_000), z])
        .collect();
    hit_ratios(bench, &case, &keys);
}

/// Zipf(0.99) for the first half (frequency wins), then a working set of 5,000 keys sliding
/// forward by one key every 4 requests (recency wins): a cache must adapt half-way.
fn shifting_hit_ratio(bench: &Bench) {
    let Some((case, requests)) = ratio_case(
        bench,
        "cache/shifting_hit_ratio",
        "hit ratio, capacity 10,000: Zipf(0.99) over 1,000,000 keys for half the requests, then a 5,000-key working set sliding one key every 4 requests, insert on miss",
    ) else {
        return;
    };
    let mut keys = zipf_keys(1_000_000, 0.99, requests / 2, 9);
    let mut rng = SplitMix64::new(13);
    keys.extend((0..requests / 2).map(|i| {
        let start = i as u64 / 4;
        WINDOW_BASE + start + rng.next_u64() % 5_000
    }));
    hit_ratios(bench, &case, &keys);
}

/// A hit-ratio case (3 samples, 1 in a quick run: replays are deterministic) and its number of
/// requests, when the filters want it.
fn ratio_case(bench: &Bench, id: &str, what: &str) -> Option<(Case, usize)> {
    let case = Case::new(id, what, Metric::Ratio, "ratio", "veza-cache").samples(3, 1);
    let requests = if bench.quick() { 1_000_000 } else { 3_000_000 };
    bench.wants(case.id()).then_some((case, requests))
}

/// The caches the hit-ratio cases replay, ours first.
const RATIO_CONTENDERS: [&str; 4] = ["veza-cache", "quick_cache", "moka", "lru"];

/// Replays `keys` (get, insert on miss) through a fresh cache of 10,000 of each contender,
/// one thread: the hit ratio.
fn hit_ratios(bench: &Bench, case: &Case, keys: &[u64]) {
    let contenders = RATIO_CONTENDERS
        .iter()
        .map(|name| Contender::new(name, move || replay_ratio(name, keys, 10_000)))
        .collect();
    bench.run(case, contenders);
}

/// The hit ratio of a fresh `capacity` cache of contender `name` replaying `keys`.
fn replay_ratio(name: &str, keys: &[u64], capacity: usize) -> f64 {
    let cap = capacity as u64;
    match name {
        "veza-cache" => {
            let cache = Cache::<u64, u64>::new(cap).expect("cache");
            fill_ratio(keys, |k| cache.get(&k), |k| cache.insert(k, k))
        }
        "quick_cache" => {
            let cache = quick_cache::sync::Cache::<u64, u64>::new(capacity);
            fill_ratio(keys, |k| cache.get(&k), |k| cache.insert(k, k))
        }
        "moka" => {
            let cache = moka::sync::Cache::<u64, u64>::new(cap);
            fill_ratio(keys, |k| cache.get(&k), |k| cache.insert(k, k))
        }
        "lru" => {
            let mut cache =
                lru::LruCache::<u64, u64>::new(NonZeroUsize::new(capacity).expect("non-zero"));
            ratio(keys, |k| {
                let hit = cache.get(&k).is_some();
                if !hit {
                    cache.put(k, k);
                }
                hit
            })
        }
        other => unreachable!("no replay for {other}"),
    }
}

/// One thread replaying Zipf(0.99) requests over 1,000,000 keys through a capacity-10,000
/// cache, inserting on every miss: requests per second, hits and misses alike (the work of a
/// cache-aside service, measured as a user would write it with each crate).
fn replay_get_insert(bench: &Bench) {
    let case = Case::new(
        "cache/replay_get_insert",
        "one thread, Zipf(0.99) over 1,000,000 keys, capacity 10,000: get, insert on miss",
        Metric::Throughput,
        "requests/s",
        "veza-cache",
    );
    if !bench.wants(case.id()) {
        return;
    }
    let requests = if bench.quick() { 500_000 } else { 2_000_000 };
    let case = case.ops(requests);
    let keys = zipf_keys(1_000_000, 0.99, requests, 3);
    bench.run(
        &case,
        vec![
            Contender::new("veza-cache", || {
                let cache = Cache::<u64, u64>::new(10_000).expect("cache");
                replay(&keys, |k| cache.get(&k), |k| cache.insert(k, k))
            }),
            Contender::new("quick_cache", || {
                let cache = quick_cache::sync::Cache::<u64, u64>::new(10_000);
                replay(&keys, |k| cache.get(&k), |k| cache.insert(k, k))
            }),
            Contender::new("moka", || {
                let cache = moka::sync::Cache::<u64, u64>::new(10_000);
                replay(&keys, |k| cache.get(&k), |k| cache.insert(k, k))
            }),
        ],
    );
}

/// Requests per second of `get`, then `insert` on a miss, over `keys`.
fn replay(keys: &[u64], get: impl Fn(u64) -> Option<u64>, insert: impl Fn(u64)) -> f64 {
    let start = Instant::now();
    for &k in keys {
        if black_box(get(k)).is_none() {
            insert(k);
        }
    }
    keys.len() as f64 / start.elapsed().as_secs_f64()
}

/// The hit ratio of `get`, then `insert` on a miss, over `keys`.
fn fill_ratio(keys: &[u64], get: impl Fn(u64) -> Option<u64>, insert: impl Fn(u64)) -> f64 {
    ratio(keys, |k| {
        let hit = get(k).is_some();
        if !hit {
            insert(k);
        }
        hit
    })
}

fn ratio(keys: &[u64], mut request: impl FnMut(u64) -> bool) -> f64 {
    let hits = keys.iter().filter(|&&k| request(k)).count();
    hits as f64 / keys.len() as f64
}

/// Lookups of random keys (half present) in 10,000,000 sorted random `u64`.
fn sorted_search(bench: &Bench) {
    let case = Case::new(
        "cache/sorted_search",
        "random lookups (half hits) in 10,000,000 sorted u64: SortedIndex::contains vs slice::binary_search",
        Metric::Throughput,
        "lookups/s",
        "veza-cache",
    );
    if !bench.wants(case.id()) {
        return;
    }
    const N: usize = 10_000_000;
    let lookups = if bench.quick() { 2_000_000 } else { 10_000_000 };
    let case = case.ops(lookups);
    let mut rng = SplitMix64::new(11);
    let mut sorted: Vec<u64> = (0..N).map(|_| rng.next_u64() >> 1 << 1).collect(); // even keys
    sorted.sort_unstable();
    sorted.dedup();
    let probes: Vec<u64> = (0..lookups)
        .map(|i| {
            let k = sorted[(rng.next_u64() % sorted.len() as u64) as usize];
            if i % 2 == 0 { k } else { k | 1 } // odd: absent
        })
        .collect();
    let index = SortedIndex::new(sorted.iter().copied());
    bench.run(
        &case,
        vec![
            Contender::new("veza-cache", || throughput(&probes, |k| index.contains(&k))),
            Contender::new("std-binary-search", || {
                throughput(&probes, |k| sorted.binary_search(&k).is_ok())
            }),
        ],
    );
}

fn throughput(probes: &[u64], contains: impl Fn(u64) -> bool) -> f64 {
    let start = Instant::now();
    let found = probes
        .iter()
        .filter(|&&k| black_box(contains(black_box(k))))
        .count();
    assert_eq!(found, probes.len() / 2, "half the probes are present");
    probes.len() as f64 / start.elapsed().as_secs_f64()
}

/// The policy simulator: every workload shape of issue #21 at capacities 1,000, 10,000 and
/// 100,000, replayed (get, insert on miss; one thread, fixed seeds) through veza-cache,
/// quick_cache, moka and LRU, beside the optimal hit ratio (Belady's MIN, which knows the
/// future and may decline to cache). Prints a markdown table (and writes it to `policy.md`
/// beside the bench records): hit ratios are deterministic, so this is a table, not samples.
#[allow(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "the simulator's table is its output: progress on standard error, the table on standard output"
)]
fn policy_table(bench: &Bench) {
    if !bench.wants("cache/policy_table") {
        return;
    }
    eprintln!("  cache/policy_table               4 caches x 6 shapes x 3 capacities, and MIN");
    let mut md = String::from(
        "| shape | capacity | veza-cache | quick_cache | moka | lru | optimal (MIN) | veza − best peer |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for capacity in [1_000usize, 10_000, 100_000] {
        let requests = (capacity * 30).max(1_000_000) / if bench.quick() { 4 } else { 1 };
        for (shape, keys) in shapes(capacity, requests) {
            let [veza, quick, moka, lru] =
                RATIO_CONTENDERS.map(|name| replay_ratio(name, &keys, capacity));
            let optimal = belady(&keys, capacity);
            let best = quick.max(moka);
            let line = format!(
                "| {shape} | {capacity} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:+.1} |\n",
                veza * 100.0,
                quick * 100.0,
                moka * 100.0,
                lru * 100.0,
                optimal * 100.0,
                (veza - best) * 100.0,
            );
            eprint!("  {line}");
            md.push_str(&line);
        }
    }
    println!("\n{md}");
    if let Some(records) = std::env::var_os("VEZA_BENCH_OUT") {
        let path = std::path::Path::new(&records).with_file_name("policy.md");
        if let Err(err) = std::fs::write(&path, &md) {
            eprintln!(
                "  cache/policy_table: cannot write {}: {err}",
                path.display()
            );
        }
    }
}

/// The workload shapes at `capacity`, `requests` each (seeds fixed).
fn shapes(capacity: usize, requests: usize) -> Vec<(&'static str, Vec<u64>)> {
    let cap = capacity as u64;
    let loop_len = cap * 12 / 10;
    let half = requests / 2;
    let sliding = |seed: u64, n: usize| -> Vec<u64> {
        // A working set of half the capacity sliding one key every 4 requests.
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|i| WINDOW_BASE + i as u64 / 4 + rng.next_u64() % (cap / 2))
            .collect()
    };
    let scan_mix: Vec<u64> = zipf_keys(1_000_000, 0.99, half, 5)
        .iter()
        .enumerate()
        .flat_map(|(i, &z)| [LOOP_BASE + i as u64 % loop_len, z])
        .collect();
    let mut shifting = zipf_keys(1_000_000, 0.99, half, 9);
    shifting.extend(sliding(13, half));
    vec![
        ("Zipf 0.8", zipf_keys(1_000_000, 0.8, requests, 21)),
        ("Zipf 0.99", zipf_keys(1_000_000, 0.99, requests, 1)),
        ("Zipf 1.2", zipf_keys(1_000_000, 1.2, requests, 23)),
        ("loop 1.2x + Zipf", scan_mix),
        ("sliding window", sliding(17, requests)),
        ("Zipf, then sliding", shifting),
    ]
}

/// Belady's MIN: on a miss with the cache full, drop the key reused furthest in the future
/// (or do not cache the new key, if it is that one). The best hit ratio any policy can reach.
fn belady(keys: &[u64], capacity: usize) -> f64 {
    // next[i]: the next request of keys[i] after i (usize::MAX: never).
    let mut next = vec![usize::MAX; keys.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, &k) in keys.iter().enumerate().rev() {
        if let Some(j) = seen.insert(k, i) {
            next[i] = j;
        }
    }
    // Resident keys with their next use; the heap holds (next use, key), stale pairs skipped.
    let mut resident: HashMap<u64, usize> = HashMap::with_capacity(capacity);
    let mut heap: BinaryHeap<(usize, u64)> = BinaryHeap::with_capacity(capacity * 2);
    let mut hits = 0usize;
    for (i, &k) in keys.iter().enumerate() {
        if resident.contains_key(&k) {
            hits += 1;
        } else if resident.len() >= capacity {
            // Find the furthest live pair.
            let furthest = loop {
                let (at, key) = *heap.peek().expect("a full cache has entries");
                if resident.get(&key) == Some(&at) {
                    break at;
                }
                heap.pop();
            };
            if next[i] >= furthest {
                continue; // the new key is the furthest: do not cache it
            }
            let (_, key) = heap.pop().expect("peeked");
            resident.remove(&key);
        }
        resident.insert(k, next[i]);
        heap.push((next[i], k));
        if heap.len() > capacity * 4 {
            heap.retain(|&(at, key)| resident.get(&key) == Some(&at));
        }
    }
    hits as f64 / keys.len() as f64
}
