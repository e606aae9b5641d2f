//! Deterministic workload data for the suites: a small fast PRNG and Zipf-distributed keys.

/// SplitMix64: a tiny, fast, well-distributed generator; deterministic for a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `count` keys in `0..n_keys` drawn from a Zipf distribution with exponent `s` (key 0 the most
/// popular), by inverting the cumulative distribution.
pub fn zipf_keys(n_keys: usize, s: f64, count: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n_keys);
    let mut total = 0.0;
    for rank in 1..=n_keys {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let u = rng.next_f64() * total;
            cdf.partition_point(|&c| c < u).min(n_keys - 1) as u64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_small_keys() {
        let keys = zipf_keys(1000, 0.99, 100_000, 1);
        let zeros = keys.iter().filter(|&&k| k == 0).count();
        let tail = keys.iter().filter(|&&k| k >= 500).count();
        assert!(zeros > 10_000, "{zeros}"); // about 1/H(1000) ~ 13%
        assert!(tail < zeros, "{tail}");
        assert!(keys.iter().all(|&k| k < 1000));
        assert_eq!(keys, zipf_keys(1000, 0.99, 100_000, 1), "deterministic");
    }
}
