//! `SortedIndex` answers exactly like `BTreeSet` for contains, rank and ranges.

use std::collections::BTreeSet;

use proptest::prelude::*;
use veza_cache::SortedIndex;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn agrees_with_btreeset(
        keys in proptest::collection::vec(0u64..5_000, 0..3_000),
        probes in proptest::collection::vec(0u64..5_100, 50),
    ) {
        let index: SortedIndex<u64> = keys.iter().copied().collect();
        let set: BTreeSet<u64> = keys.iter().copied().collect();
        prop_assert_eq!(index.len(), set.len());
        prop_assert!(index.as_slice().iter().copied().eq(set.iter().copied()));
        for p in &probes {
            prop_assert_eq!(index.contains(p), set.contains(p));
            prop_assert_eq!(index.rank(p), set.range(..p).count());
        }
        for w in probes.windows(2) {
            let (lo, hi) = (w[0].min(w[1]), w[0].max(w[1]));
            let expected: Vec<u64> = set.range(lo..hi).copied().collect();
            prop_assert_eq!(index.range(lo..hi), &expected[..]);
            let expected: Vec<u64> = set.range(lo..=hi).copied().collect();
            prop_assert_eq!(index.range(lo..=hi), &expected[..]);
            let expected: Vec<u64> = set.range(lo..).copied().collect();
            prop_assert_eq!(index.range(lo..), &expected[..]);
        }
    }
}

#[test]
fn large_sets_with_many_layers() {
    let keys: Vec<u64> = (0..1_000_000u64).map(|i| i * 3).collect();
    let index = SortedIndex::new(keys.iter().copied());
    for probe in (0..3_000_000u64).step_by(7) {
        assert_eq!(index.contains(&probe), probe % 3 == 0, "{probe}");
        assert_eq!(index.rank(&probe), probe.div_ceil(3) as usize);
    }
    assert!(SortedIndex::<u64>::new([]).range(..).is_empty());
}
