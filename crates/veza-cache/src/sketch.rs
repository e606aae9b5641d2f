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
    /// Blocks of 64 bytes (one cache line): a key's four counters all lie in one block, so a
    /// lookup touches one line. As many as the entries need (a quarter of them), not rounded
    /// up to a power of two: a key's block comes from a multiply, not a mask, so a cache of
    /// 1,250 entries a shard keeps 20 KiB of counters, not 32.
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
        let entries = usize::try_from(capacity.clamp(4, 1 << 25)).unwrap_or(1 << 25);
        let blocks = entries.div_ceil(4);
        Sketch {
            table: vec![0; blocks * 64].into_boxed_slice(),
            blocks,
            additions: 0,
            sample: capacity.max(16).saturating_mul(10),
        }
    }

    /// `hash`'s block (the high half of a remix, scaled to the block count) and the remix,
    /// whose low bits pick the counter in each row ([`cell`]).
    #[inline(always)]
    fn locate(&self, hash: u64) -> (usize, u64) {
        let mut h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        let block = ((h >> 32) * self.blocks as u64) >> 32;
        (block as usize * 64, h)
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

    /// Starts bringing `hash`'s block into the cache ([`prefetch`]): called where an
    /// [`add`](Sketch::add) is likely to follow (a lookup that missed, whose caller inserts
    /// next; the start of an insert), so that the block's cache miss is under way while the
    /// work before the add runs instead of after it.
    #[inline(always)]
    pub(crate) fn touch(&self, hash: u64) {
        let (start, _) = self.locate(hash);
        prefetch(&self.table[start]);
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

/// Asks the CPU to bring `byte`'s cache line in, without waiting for it: the instruction
/// retires at once, so the work after it runs while the line comes (a load whose value is
/// thrown away would hold up everything behind it until the line arrived). A no-op where
/// there is no such instruction, and under miri.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(byte: &u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees, cannot fault, and
    // `byte` is a live reference in any case. `_mm_prefetch` needs SSE, which every x86_64
    // target has.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(byte).cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = byte;
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
    fn sixteen_bytes_an_entry_and_every_block_in_use() {
        // Not rounded up to a power of two: 1,250 entries are 313 blocks of 64 bytes.
        let mut s = Sketch::new(1_250);
        assert_eq!(s.table.len(), 313 * 64);
        // The multiply spreads keys over all the blocks, the last one included.
        let mut used = vec![false; s.blocks];
        for k in 0..20_000 {
            used[s.locate(spread(k)).0 / 64] = true;
            s.add(spread(k));
        }
        assert!(
            used.iter().all(|&u| u),
            "{} blocks unused",
            used.iter().filter(|&&u| !u).count()
        );
        assert_eq!(Sketch::new(1 << 20).table.len(), 1 << 24);
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
