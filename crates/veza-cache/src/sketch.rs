//! A count-min sketch of 4-bit counters with periodic halving: TinyLFU's estimate of how often
//! each key was requested lately (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", 2017; the layout of Caffeine's `FrequencySketch`).
//!
//! Each key has four counters in one 64-byte block (so a lookup touches one cache line, as
//! in Caffeine's sketch); sixteen counters share a `u64`. The estimate is the smallest of the four; an addition
//! raises only the counters below the new estimate (conservative update). When the
//! additions reach the sample size (ten times the capacity it serves), every counter is
//! halved, so the sketch forgets old popularity at the pace the cache turns over.

/// Four 4-bit counters per key, halved every `sample` additions.
pub(crate) struct Sketch {
    table: Box<[u64]>,
    /// Blocks of eight words (one 64-byte cache line) minus one: a key's four counters all
    /// lie in one block, so a lookup touches one line.
    blocks: usize,
    additions: u64,
    sample: u64,
}

/// A counter's ceiling.
const MAX: u64 = 15;

impl Sketch {
    /// A sketch for a cache of about `capacity` entries: sixteen counters per entry.
    pub(crate) fn new(capacity: u64) -> Sketch {
        let words = usize::try_from(capacity.clamp(8, 1 << 26))
            .unwrap_or(1 << 26)
            .next_power_of_two();
        Sketch {
            table: vec![0; words].into_boxed_slice(),
            blocks: words / 8 - 1,
            additions: 0,
            sample: capacity.max(16).saturating_mul(10),
        }
    }

    /// Where `hash`'s four counters are: the first word of its block (from the high bits of
    /// a remix), then per row one of two words and one of sixteen nibbles (from the low bits).
    #[inline]
    fn cells(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        let mut h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        let block = (((h >> 40) as usize) & self.blocks) * 8;
        let cell = |row: u32| {
            let bits = (h >> (row * 8)) as u32;
            (
                row as usize * 2 + (bits & 1) as usize,
                ((bits >> 1) & 15) * 4,
            )
        };
        (block, [cell(0), cell(1), cell(2), cell(3)])
    }

    /// How often `hash` was counted lately (0 to 15).
    #[inline]
    pub(crate) fn estimate(&self, hash: u64) -> u64 {
        let (start, cells) = self.cells(hash);
        let block: &[u64; 8] = self.table[start..start + 8]
            .try_into()
            .expect("blocks are eight words");
        min(block, &cells)
    }

    /// Counts `times` requests of `hash` (each counter saturates at 15). A conservative
    /// update: only the counters below the new estimate rise, to it, so keys sharing a
    /// counter inflate each other less (measured: a quarter to half a point of hit ratio
    /// on small caches, where the sketch is most crowded).
    #[inline]
    pub(crate) fn add(&mut self, hash: u64, times: u64) {
        if times == 0 {
            return;
        }
        let (start, cells) = self.cells(hash);
        let block: &mut [u64; 8] = (&mut self.table[start..start + 8])
            .try_into()
            .expect("blocks are eight words");
        let target = min(block, &cells).saturating_add(times).min(MAX);
        let mut added = false;
        for (word, shift) in cells {
            let now = (block[word & 7] >> shift) & MAX;
            if now < target {
                block[word & 7] += (target - now) << shift;
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

/// The smallest of the four counters.
#[inline]
fn min(block: &[u64; 8], cells: &[(usize, u32); 4]) -> u64 {
    cells
        .iter()
        .map(|&(word, shift)| (block[word & 7] >> shift) & MAX)
        .fold(MAX, u64::min)
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
        assert!(
            s.estimate(hot) >= 4,
            "but not forgotten: {}",
            s.estimate(hot)
        );
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
        let rare: u64 = (0..8)
            .map(|r| s.estimate(spread(10_000 + r)))
            .max()
            .unwrap();
        assert!(
            frequent >= 8 && rare <= 2,
            "frequent {frequent}, rare {rare}"
        );
    }
}
