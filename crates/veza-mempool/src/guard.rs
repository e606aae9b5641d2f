//! The guards that hand out pooled objects and give them back on drop: [`Pooled`] (borrows
//! the pool) and [`PooledOwned`] (holds a clone of it).

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::pool::Pool;

/// Where a guard gives its object back: a [`Pool`] or a [`BufferPool`](crate::BufferPool).
pub trait Home<T> {
    /// What the pool noted when it handed the object out (a buffer's size class).
    type Hint: Copy;
    /// Takes the object back (resets it, keeps it if there is room).
    fn give_back(&self, item: T, hint: Self::Hint);
    /// Notes that a guard kept its object.
    fn detached(&self);
}

/// An object from a pool; goes back to the pool when dropped.
pub struct Pooled<'a, T, P: Home<T> = Pool<T>> {
    pool: &'a P,
    item: Option<T>,
    hint: P::Hint,
}

impl<'a, T, P: Home<T>> Pooled<'a, T, P> {
    pub(crate) fn new(pool: &'a P, item: T, hint: P::Hint) -> Self {
        Pooled {
            pool,
            item: Some(item),
            hint,
        }
    }

    /// Keeps the object: it will not go back to the pool.
    pub fn detach(mut self) -> T {
        self.pool.detached();
        self.item.take().expect("present until drop")
    }
}

impl<T, P: Home<T>> Deref for Pooled<'_, T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        self.item.as_ref().expect("present until drop")
    }
}

impl<T, P: Home<T>> DerefMut for Pooled<'_, T, P> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("present until drop")
    }
}

impl<T, P: Home<T>> Drop for Pooled<'_, T, P> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.give_back(item, self.hint);
        }
    }
}

impl<T: fmt::Debug, P: Home<T>> fmt::Debug for Pooled<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&**self).finish()
    }
}

/// An object from a pool, holding a clone of the pool, for `'static` use; goes back to the
/// pool when dropped.
pub struct PooledOwned<T, P: Home<T> = Pool<T>> {
    pool: P,
    item: Option<T>,
    hint: P::Hint,
}

impl<T, P: Home<T>> PooledOwned<T, P> {
    pub(crate) fn new(pool: P, item: T, hint: P::Hint) -> Self {
        PooledOwned {
            pool,
            item: Some(item),
            hint,
        }
    }

    /// Keeps the object: it will not go back to the pool.
    pub fn detach(mut self) -> T {
        self.pool.detached();
        self.item.take().expect("present until drop")
    }
}

impl<T, P: Home<T>> Deref for PooledOwned<T, P> {
    type Target = T;
    fn deref(&self) -> &T {
        self.item.as_ref().expect("present until drop")
    }
}

impl<T, P: Home<T>> DerefMut for PooledOwned<T, P> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("present until drop")
    }
}

impl<T, P: Home<T>> Drop for PooledOwned<T, P> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.give_back(item, self.hint);
        }
    }
}

impl<T: fmt::Debug, P: Home<T>> fmt::Debug for PooledOwned<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PooledOwned").field(&**self).finish()
    }
}
