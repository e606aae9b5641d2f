//! A count-min sketch of 4-bit counters with periodic halving: TinyLFU's estimate of how often
//! each key was requested lately (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", 2017; the layout of Caffeine's `FrequencySketch`).
//!
//! Each key has four counters, one per row, each picked by its own remix of the key's hash;
//! sixteen counters share a `u64`. The estimate is the smallest of the four. When the
//! additions reach the sample size (ten times the capacity it serves), every counter is
//! halved, so the sketch forgets old popularity at the pace the cache turns over.

/// Four 4-bit counters per key, halved every `sample` additions.
pub(crate) struct Sketch {
    table: Box<[u64]>,
    mask: usize,
    additions: u64,
    sample: u64,
}

/// Odd multipliers that remix the key's hash into one index per row.
const SEEDS: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
];

/// A counter's ceiling.
const MAX: u64 = 15;

impl Sketch {
    /// A sketch for a cache of about `capacity` entries.
    pub(crate) fn new(capacity: u64) -> Sketch {
        let words = usize::try_from(capacity.clamp(16, 1 << 26))
            .unwrap_or(1 << 26)
            .next_power_of_two();
        Sketch {
            table: vec![0; words].into_boxed_slice(),
            mask: words - 1,
            additions: 0,
            sample: capacity.max(16).saturating_mul(10),
        }
    }

    /// The word and bit shift of `hash`'s counter in row `row`.
    #[inline]
    fn cell(&self, hash: u64, row: usize) -> (usize, u32) {
        let h = (hash ^ (hash >> 29)).wrapping_mul(SEEDS[row]);
        let word = (h >> 32) as usize & self.mask;
        let shift = ((h >> 24) & 15) as u32 * 4;
        (word, shift)
    }

    /// How often `hash` was counted lately (0 to 15).
    #[inline]
    pub(crate) fn estimate(&self, hash: u64) -> u64 {
        (0..4)
            .map(|row| {
                let (word, shift) = self.cell(hash, row);
                (self.table[word] >> shift) & MAX
            })
            .min()
            .unwrap_or(0)
    }

    /// Counts `times` requests of `hash` (each counter saturates at 15).
    pub(crate) fn add(&mut self, hash: u64, times: u64) {
        if times == 0 {
            return;
        }
        let mut added = false;
        for row in 0..4 {
            let (word, shift) = self.cell(hash, row);
            let now = (self.table[word] >> shift) & MAX;
            let next = now.saturating_add(times).min(MAX);
            if next != now {
                self.table[word] += (next - now) << shift;
                added = true;
            }
        }
        if added {
            self.additions = self.additions.saturating_add(times);
            if self.additions >= self.sample {
                self.halve();
            }
        }
    }

    /// Ages every counter: halves it.
    fn halve(&mut self) {
        for word in self.table.iter_mut() {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ i
    }

    #[test]
    fn counts_saturate_at_fifteen_and_halve_with_age() {
        let mut s = Sketch::new(1_000);
        let hot = spread(1);
        for _ in 0..20 {
            s.add(hot, 1);
        }
        assert_eq!(s.estimate(hot), 15, "saturates");
        s.add(spread(2), 3);
        assert!(s.estimate(spread(2)) >= 3);
        assert!(s.estimate(spread(3)) <= 1, "an unseen key is (nearly) zero");
        // Ten thousand other additions reach the sample size: every counter halves.
        for i in 100..10_100 {
            s.add(spread(i), 1);
        }
        assert!(s.estimate(hot) <= 8, "halved: {}", s.estimate(hot));
        assert!(s.estimate(hot) >= 4, "but not forgotten: {}", s.estimate(hot));
    }

    #[test]
    fn frequent_keys_rank_above_rare_ones() {
        let mut s = Sketch::new(4_096);
        for round in 0..8u64 {
            for k in 0..200 {
                s.add(spread(k), 1);
            }
            s.add(spread(10_000 + round), 1);
        }
        let frequent: u64 = (0..200).map(|k| s.estimate(spread(k))).min().unwrap();
        let rare: u64 = (0..8).map(|r| s.estimate(spread(10_000 + r))).max().unwrap();
        assert!(frequent >= 8 && rare <= 2, "frequent {frequent}, rare {rare}");
    }
}
