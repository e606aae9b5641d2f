//! [`Recycle`]: how a type is made clean again when it goes back to a pool.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;

/// Resets a value to a clean state for reuse, keeping its allocations.
///
/// Implemented for the standard collections (they are cleared, keeping their capacity). A
/// `Pool` built with [`Pool::recycling`](crate::Pool::recycling) calls it on every return;
/// other pools take a closure instead. It must not panic.
pub trait Recycle {
    /// Makes `self` look freshly created, keeping its memory.
    fn recycle(&mut self);
}

impl<T> Recycle for Vec<T> {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl Recycle for String {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl<T> Recycle for VecDeque<T> {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl<K, V, S: BuildHasher> Recycle for HashMap<K, V, S> {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl<T, S: BuildHasher> Recycle for HashSet<T, S> {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl<K, V> Recycle for BTreeMap<K, V> {
    fn recycle(&mut self) {
        self.clear();
    }
}

impl<T> Recycle for BTreeSet<T> {
    fn recycle(&mut self) {
        self.clear();
    }
}

#[cfg(feature = "bytes")]
impl Recycle for bytes::BytesMut {
    fn recycle(&mut self) {
        self.clear();
    }
}
