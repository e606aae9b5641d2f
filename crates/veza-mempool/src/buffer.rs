//! [`BufferPool`]: byte buffers in size classes, handed out empty, with a cap on retained bytes.

use std::fmt;
use std::sync::Arc;

use veza_core::{Observe, PoolStats};

use crate::budget::{Pressure, Trim};
use crate::guard::{Home, Pooled, PooledOwned};
use crate::metrics::Discard;
use crate::pool::{Policy, Pool};

/// A growable byte buffer a [`BufferPool`] can hold: `Vec<u8>`, or `bytes::BytesMut` with the
/// `bytes` feature.
pub trait Buffer: Send + 'static {
    /// An empty buffer with room for `capacity` bytes.
    fn with_capacity(capacity: usize) -> Self;
    /// The bytes it can hold without reallocating.
    fn capacity(&self) -> usize;
    /// Empties it, keeping its memory.
    fn clear(&mut self);
}

impl Buffer for Vec<u8> {
    fn with_capacity(capacity: usize) -> Self {
        Vec::with_capacity(capacity)
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn clear(&mut self) {
        Vec::clear(self);
    }
}

#[cfg(feature = "bytes")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytes")))]
impl Buffer for bytes::BytesMut {
    fn with_capacity(capacity: usize) -> Self {
        bytes::BytesMut::with_capacity(capacity)
    }
    fn capacity(&self) -> usize {
        bytes::BytesMut::capacity(self)
    }
    fn clear(&mut self) {
        bytes::BytesMut::clear(self);
    }
}

/// A buffer from a [`BufferPool`].
pub type PooledBuf<'a, B = Vec<u8>> = Pooled<'a, B, BufferPool<B>>;
/// A buffer holding a clone of its [`BufferPool`], for `'static` use.
pub type PooledBufOwned<B = Vec<u8>> = PooledOwned<B, BufferPool<B>>;

/// Byte buffers in size classes.
///
/// [`get(n)`](BufferPool::get) hands out an empty buffer with room for at least `n` bytes,
/// from the smallest class that fits. On return a buffer is cleared and kept in the largest
/// class its capacity covers, while that class holds less than its share of
/// `max_retained_bytes` (split evenly across classes). A buffer larger than twice the largest
/// class, or smaller than the smallest, is dropped (counted as `oversized`); a request larger
/// than the largest class gets a fresh buffer that is not kept either.
///
/// A cheap handle: `BufferPool` is `Clone` (one `Arc`), and clones share the buffers.
pub struct BufferPool<B: Buffer = Vec<u8>> {
    s: Arc<Classes<B>>,
}

impl<B: Buffer> Clone for BufferPool<B> {
    fn clone(&self) -> Self {
        BufferPool { s: self.s.clone() }
    }
}

/// What the clones of a buffer pool share.
struct Classes<B: Buffer> {
    classes: Vec<(usize, ClassPool<B>)>,
    /// For each power of two `2^k`, the smallest class at least that large (`classes.len()`
    /// when none is): a request's class in one lookup and a step or two.
    by_log2: [u8; 65],
    name: String,
}

/// The pool of one size class.
pub type ClassPool<B> = Pool<B, BufferPolicy>;

/// The [`Policy`] of a size class: buffers of the class size, cleared on return, weighed by
/// capacity.
#[derive(Debug, Clone, Copy)]
pub struct BufferPolicy {
    size: usize,
}

impl<B: Buffer> Policy<B> for BufferPolicy {
    fn create(&self) -> B {
        B::with_capacity(self.size)
    }
    fn reset(&self, buffer: &mut B) {
        buffer.clear();
    }
    fn weigh(&self, buffer: &B) -> u64 {
        buffer.capacity() as u64
    }
    fn weighs_bytes(&self) -> bool {
        true
    }
}

impl<B: Buffer> BufferPool<B> {
    /// Classes 4 KiB, 16 KiB, 64 KiB, 256 KiB and 1 MiB, keeping at most 64 MiB in all.
    pub fn new() -> BufferPool<B> {
        BufferPool::with_classes(
            "buffers",
            &[4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20],
            64 << 20,
        )
        .expect("the default classes are valid")
    }

    /// A pool with these settings (see [`BufferPoolConfig`](crate::BufferPoolConfig); from a
    /// file with the `serde` feature).
    pub fn from_config(
        config: &crate::BufferPoolConfig,
    ) -> Result<BufferPool<B>, crate::ConfigError> {
        BufferPool::with_classes(&config.name, &config.classes, config.max_retained_bytes)
    }

    /// A pool named `name` with these class sizes (strictly increasing, non-zero) and a cap on
    /// the bytes kept idle. Each class is a [`Pool`] whose metrics are labelled `name.size`.
    pub fn with_classes(
        name: &str,
        sizes: &[usize],
        max_retained_bytes: u64,
    ) -> Result<BufferPool<B>, crate::ConfigError> {
        if sizes.is_empty() || sizes[0] == 0 || sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(crate::ConfigError(
                "buffer classes must be non-empty, non-zero and strictly increasing",
            ));
        }
        let per_class = max_retained_bytes / sizes.len() as u64;
        let classes = sizes
            .iter()
            .map(|&size| {
                let label = format!("{name}.{}", human(size));
                (
                    size,
                    Pool::with_policy(BufferPolicy { size }, per_class, &label),
                )
            })
            .collect();
        let mut by_log2 = [0u8; 65];
        for (k, slot) in by_log2.iter_mut().enumerate() {
            let at_least = 1u128 << k;
            let class = sizes.partition_point(|&size| (size as u128) < at_least);
            *slot = u8::try_from(class).unwrap_or(u8::MAX);
        }
        if sizes.len() >= usize::from(u8::MAX) {
            return Err(crate::ConfigError("at most 254 buffer classes"));
        }
        Ok(BufferPool {
            s: Arc::new(Classes {
                classes,
                by_log2,
                name: name.to_owned(),
            }),
        })
    }

    /// An empty buffer with room for at least `min_capacity` bytes.
    #[inline(always)]
    pub fn get(&self, min_capacity: usize) -> PooledBuf<'_, B> {
        let (buffer, class) = self.take(min_capacity);
        Pooled::new(self, buffer, class)
    }

    /// Like [`get`](BufferPool::get), holding a clone of the pool (for `'static` use).
    pub fn get_owned(&self, min_capacity: usize) -> PooledBufOwned<B> {
        let (buffer, class) = self.take(min_capacity);
        PooledOwned::new(self.clone(), buffer, class)
    }

    /// The class sizes.
    pub fn class_sizes(&self) -> Vec<usize> {
        self.s.classes.iter().map(|(size, _)| *size).collect()
    }

    /// The pool of one class, for its own statistics.
    pub fn class(&self, size: usize) -> Option<&ClassPool<B>> {
        self.s
            .classes
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, p)| p)
    }

    /// A buffer and the index of its class (`NO_CLASS` for an oversized request). Inlined,
    /// for the reason [`Pool::take`] gives.
    #[inline(always)]
    fn take(&self, min_capacity: usize) -> (B, usize) {
        let class = self.class_for(min_capacity);
        match self.s.classes.get(class) {
            Some((_, pool)) => (pool.take(), class),
            None => (B::with_capacity(min_capacity), NO_CLASS),
        }
    }

    /// The smallest class holding `min_capacity` bytes (`classes.len()` when none does).
    #[inline]
    fn class_for(&self, min_capacity: usize) -> usize {
        // The smallest class >= the next power of two is an upper bound; classes that are not
        // powers of two may allow a smaller one just below it.
        let log2 = (usize::BITS - min_capacity.saturating_sub(1).leading_zeros()) as usize;
        let mut class = usize::from(self.s.by_log2[log2]);
        while class > 0 && self.s.classes[class - 1].0 >= min_capacity {
            class -= 1;
        }
        class
    }

    /// The class a buffer of `capacity` belongs to: the largest whose size it covers.
    fn class_of(&self, capacity: usize) -> Option<usize> {
        self.s
            .classes
            .partition_point(|(size, _)| *size <= capacity)
            .checked_sub(1)
    }
}

/// The hint of a buffer that came from no class.
const NO_CLASS: usize = usize::MAX;

impl<B: Buffer> Home<B> for BufferPool<B> {
    /// The class it was handed out from: the usual case (a buffer that did not grow past the
    /// next class) goes straight back there.
    type Hint = usize;

    #[inline]
    fn give_back(&self, buffer: B, class: usize) {
        let capacity = buffer.capacity();
        let fits = |i: usize| {
            self.s.classes[i].0 <= capacity
                && self
                    .s
                    .classes
                    .get(i + 1)
                    .is_none_or(|(next, _)| capacity < *next)
        };
        let class = if class != NO_CLASS && fits(class) {
            Some(class)
        } else {
            self.class_of(capacity)
        };
        let largest = self.s.classes[self.s.classes.len() - 1].0;
        match class {
            Some(i) if capacity < largest.saturating_mul(2) => self.s.classes[i].1.put(buffer),
            Some(i) => self.s.classes[i].1.count_discard(Discard::Oversized),
            None => self.s.classes[0].1.count_discard(Discard::Oversized),
        }
    }

    fn detached(&self) {
        // Counted nowhere: a detached buffer simply leaves; `in_use` is per class and would
        // need to know its class, which a grown buffer no longer tells.
    }
}

impl<B: Buffer> Default for BufferPool<B> {
    fn default() -> Self {
        BufferPool::new()
    }
}

impl<B: Buffer> Observe for BufferPool<B> {
    type Snapshot = PoolStats;

    /// The classes added up.
    fn snapshot(&self) -> PoolStats {
        let mut total = PoolStats::default();
        for (_, pool) in &self.s.classes {
            let s = pool.snapshot();
            total.max_size += s.max_size;
            total.size += s.size;
            total.idle += s.idle;
            total.in_use += s.in_use;
            total.acquired += s.acquired;
            total.hits += s.hits;
            total.misses += s.misses;
            total.returns += s.returns;
            total.discards += s.discards;
            total.retained_bytes += s.retained_bytes;
        }
        total
    }
}

impl<B: Buffer> Trim for BufferPool<B> {
    fn on_pressure(&self, pressure: Pressure) {
        self.s.on_pressure(pressure);
    }
}

impl<B: Buffer> Trim for Classes<B> {
    fn on_pressure(&self, pressure: Pressure) {
        for (_, pool) in &self.classes {
            pool.on_pressure(pressure);
        }
    }
}

impl<B: Buffer> crate::budget::Attach for BufferPool<B> {
    fn trim_target(&self) -> std::sync::Weak<dyn Trim> {
        Arc::downgrade(&self.s) as std::sync::Weak<dyn Trim>
    }
}

impl<B: Buffer> fmt::Debug for BufferPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("name", &self.s.name)
            .field("classes", &self.class_sizes())
            .finish()
    }
}

/// `4k`, `64k`, `1m`, or the byte count.
fn human(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}m", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}k", s >> 10),
        s => s.to_string(),
    }
}
