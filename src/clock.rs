//! Where "now" comes from. Every time rule (the 24-hour window, records from the future,
//! receipts, checkpoints) asks a [`Clock`], so a test states the time it runs at instead
//! of depending on today's date, and a verifier can check "as of" a given time.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock (what daemons run on).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands at a set time and moves only when told: for tests, and for
/// checking evidence as of a given moment.
#[derive(Debug)]
pub struct FixedClock {
    // std Mutex: held only to read or replace one value.
    at: Mutex<DateTime<Utc>>,
}

impl FixedClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self { at: Mutex::new(at) }
    }

    /// Moves the clock to `at` (forwards or back, as a reset RTC would).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.at.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_fixed_clock_stands_still_until_moved() {
        let t = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = FixedClock::at(t);
        assert_eq!(clock.now(), t);
        clock.set(t + Duration::hours(25));
        assert_eq!(clock.now(), t + Duration::hours(25));
        clock.set(t - Duration::days(400));
        assert_eq!(clock.now(), t - Duration::days(400));
    }
}
