//! A count-min sketch of 4-bit counters with periodic halving: TinyLFU's estimate of how often
//! each key was requested lately (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", 2017; the block layout of Caffeine's `FrequencySketch`).
//!
//! Each key has four counters in one 64-byte block (so a lookup touches one cache line, as
//! in Caffeine's sketch), one per row, each row a sixteen-byte quarter of the block. A counter
//! holds 0 to 15 in a byte of its own: twice the memory of packed nibbles (16 bytes per entry
//! of the cache), for a count that is a byte load and store instead of four variable shifts
//! (callgrind on `cache/replay_get_insert`: about 130 instructions a count packed, with its
//! call; about 53 in bytes, inlined into the insert). The estimate is the smallest
//! of the four; an addition raises only the counters at the estimate (conservative update).
//! When the additions reach the sample size (ten times the capacity it serves), every counter
//! is halved, so the sketch forgets old popularity at the pace the cache turns over.

/// Four 4-bit counters per key (a byte each), halved every `sample` additions.
pub(crate) struct Sketch {
    table: Box<[u8]>,
    /// Blocks of 64 bytes (one cache line) minus one: a key's four counters all lie in one
    /// block, so a lookup touches one line.
    blocks: usize,
    additions: u64,
    sample: u64,
}

/// A counter's ceiling.
const MAX: u8 = 15;

impl Sketch {
    /// A sketch for a cache of about `capacity` entries: sixteen counters per entry (four
    /// per row), up to 2^25 entries' worth (512 MiB).
    pub(crate) fn new(capacity: u64) -> Sketch {
        let entries = usize::try_from(capacity.clamp(4, 1 << 25))
            .unwrap_or(1 << 25)
            .next_power_of_two();
        let bytes = entries * 16;
        Sketch {
            table: vec![0; bytes].into_boxed_slice(),
            blocks: bytes / 64 - 1,
            additions: 0,
            sample: capacity.max(16).saturating_mul(10),
        }
    }

    /// `hash`'s block (from the high bits of a remix) and the remix, whose low bits pick the
    /// counter in each row ([`cell`]).
    #[inline(always)]
    fn locate(&self, hash: u64) -> (usize, u64) {
        let mut h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        ((((h >> 40) as usize) & self.blocks) * 64, h)
    }

    /// How often `hash` was counted lately (0 to 15).
    #[inline]
    pub(crate) fn estimate(&self, hash: u64) -> u64 {
        let (start, h) = self.locate(hash);
        let block: &[u8; 64] = self.table[start..start + 64]
            .try_into()
            .expect("blocks are 64 bytes");
        let count = |row| block[cell(h, row)];
        u64::from(count(0).min(count(1)).min(count(2).min(count(3))))
    }

    /// Reads `hash`'s block and throws the value away: called before the work that comes
    /// ahead of an [`add`](Sketch::add) (the table probe), so that the block's cache miss
    /// is under way while that work runs instead of after it.
    #[inline(always)]
    pub(crate) fn touch(&self, hash: u64) {
        let (start, _) = self.locate(hash);
        std::hint::black_box(self.table[start]);
    }

    /// Counts one request of `hash` (each counter saturates at 15). A conservative update:
    /// only the counters at the current estimate (the smallest) rise, by one, so keys sharing
    /// a counter inflate each other less (measured: a quarter to half a point of hit ratio on
    /// small caches, where the sketch is most crowded). Returns the key's estimate after
    /// counting it.
    #[inline]
    pub(crate) fn add(&mut self, hash: u64) -> u8 {
        let (start, h) = self.locate(hash);
        let block: &mut [u8; 64] = (&mut self.table[start..start + 64])
            .try_into()
            .expect("blocks are 64 bytes");
        let cells = [cell(h, 0), cell(h, 1), cell(h, 2), cell(h, 3)];
        let [a, b, c, d] = cells.map(|i| block[i]);
        let least = a.min(b).min(c.min(d));
        if least >= MAX {
            return MAX;
        }
        for i in cells {
            block[i] += u8::from(block[i] == least);
        }
        self.additions += 1;
        if self.additions >= self.sample {
            self.halve();
        }
        least + 1
    }

    /// Ages every counter: halves it.
    #[cold]
    #[inline(never)]
    fn halve(&mut self) {
        for counter in self.table.iter_mut() {
            *counter >>= 1;
        }
        self.additions /= 2;
    }
}

/// Row `row`'s counter of a key whose remix is `h`: its byte in the block (row 0 holds bytes
/// 0-15, row 1 bytes 16-31, ...), from four bits of the remix's byte `row`.
#[inline(always)]
fn cell(h: u64, row: u32) -> usize {
    row as usize * 16 + ((h >> (row * 8 + 1)) & 15) as usize
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
        for n in 1..=20u64 {
            // add answers the estimate it leaves (what the store keeps as an entry's `seen`).
            assert_eq!(u64::from(s.add(hot)), n.min(15));
            assert_eq!(s.estimate(hot), n.min(15));
        }
        assert_eq!(s.estimate(hot), 15, "saturates");
        for _ in 0..3 {
            s.add(spread(2));
        }
        assert!(s.estimate(spread(2)) >= 3);
        assert!(s.estimate(spread(3)) <= 1, "an unseen key is (nearly) zero");
        // Ten thousand other additions reach the sample size: every counter halves.
        for i in 100..10_100 {
            s.add(spread(i));
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
                s.add(spread(k));
            }
            s.add(spread(10_000 + round));
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
