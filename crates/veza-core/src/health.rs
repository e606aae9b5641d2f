//! Component health for readiness endpoints: [`Health`] and the [`HealthCheck`] trait.

use std::borrow::Cow;
use std::fmt;

use crate::BoxFuture;

/// The health of one component, or of several combined with [`Health::worst`].
///
/// Ordered from best to worst: `Healthy < Degraded < Unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "status", content = "reason", rename_all = "snake_case")
)]
pub enum Health {
    /// Working normally.
    Healthy,
    /// Serving, but impaired (a pool near its limit, a cache under memory pressure); a
    /// readiness probe should still pass.
    Degraded(Cow<'static, str>),
    /// Not able to serve (database unreachable, pool closed); a readiness probe should fail.
    Unhealthy(Cow<'static, str>),
}

impl Health {
    /// A degraded state with its reason.
    pub fn degraded(reason: impl Into<Cow<'static, str>>) -> Self {
        Health::Degraded(reason.into())
    }

    /// An unhealthy state with its reason.
    pub fn unhealthy(reason: impl Into<Cow<'static, str>>) -> Self {
        Health::Unhealthy(reason.into())
    }

    /// `true` for `Healthy` and `Degraded`: the component can take traffic.
    pub fn is_ready(&self) -> bool {
        !matches!(self, Health::Unhealthy(_))
    }

    /// `true` only for `Healthy`.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The reason given for a degraded or unhealthy state.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Degraded(r) | Health::Unhealthy(r) => Some(r),
        }
    }

    /// A stable name for the state: `"healthy"`, `"degraded"` or `"unhealthy"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded(_) => "degraded",
            Health::Unhealthy(_) => "unhealthy",
        }
    }

    fn severity(&self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded(_) => 1,
            Health::Unhealthy(_) => 2,
        }
    }

    /// The worse of two states; on a tie, the first one (and its reason) is kept.
    pub fn worst(self, other: Health) -> Health {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The worst state of many; `Healthy` for none.
    pub fn combine<I: IntoIterator<Item = Health>>(states: I) -> Health {
        states.into_iter().fold(Health::Healthy, Health::worst)
    }
}

impl PartialOrd for Health {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Health {
    /// Orders by severity, then by reason so that the order agrees with `Eq`.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.severity()
            .cmp(&other.severity())
            .then_with(|| self.reason().cmp(&other.reason()))
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str(self.as_str()),
            Some(reason) => write!(f, "{}: {reason}", self.as_str()),
        }
    }
}

/// A component that can report its health, for readiness endpoints.
///
/// The check is asynchronous because a real check may do I/O (a `SELECT 1` on a pooled
/// connection). It returns a boxed future so that `dyn HealthCheck` works: a service keeps a
/// `Vec<Arc<dyn HealthCheck>>` of its components and combines their answers with
/// [`Health::combine`]. A check should be cheap and bounded in time; it must not panic.
pub trait HealthCheck: Send + Sync {
    /// A short, stable name for the component (`"db"`, `"cache.users"`), used as a label.
    fn name(&self) -> &str;

    /// Checks the component now.
    fn check(&self) -> BoxFuture<'_, Health>;
}

impl<T: HealthCheck + ?Sized> HealthCheck for std::sync::Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn check(&self) -> BoxFuture<'_, Health> {
        (**self).check()
    }
}

impl<T: HealthCheck + ?Sized> HealthCheck for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn check(&self) -> BoxFuture<'_, Health> {
        (**self).check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_prefers_the_more_severe_state() {
        let degraded = Health::degraded("pool 90% used");
        let down = Health::unhealthy("database unreachable");
        assert_eq!(Health::Healthy.worst(degraded.clone()), degraded);
        assert_eq!(degraded.clone().worst(down.clone()), down);
        assert_eq!(down.clone().worst(Health::Healthy), down);
        assert_eq!(
            Health::combine([Health::Healthy, degraded.clone(), Health::Healthy]),
            degraded
        );
        assert_eq!(Health::combine([]), Health::Healthy);
    }

    #[test]
    fn readiness_follows_severity() {
        assert!(Health::Healthy.is_ready());
        assert!(Health::degraded("slow").is_ready());
        assert!(!Health::unhealthy("down").is_ready());
        assert!(Health::Healthy < Health::degraded("x"));
        assert!(Health::degraded("z") < Health::unhealthy("a"));
    }

    #[test]
    fn display_includes_the_reason() {
        assert_eq!(Health::Healthy.to_string(), "healthy");
        assert_eq!(
            Health::unhealthy("connection refused").to_string(),
            "unhealthy: connection refused"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serialises_as_status_and_reason() {
        let json = serde_json::to_string(&Health::degraded("slow")).unwrap();
        assert_eq!(json, r#"{"status":"degraded","reason":"slow"}"#);
        let back: Health = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Health::degraded("slow"));
        assert_eq!(
            serde_json::to_string(&Health::Healthy).unwrap(),
            r#"{"status":"healthy"}"#
        );
    }
}
