//! The storage deadline (存储时限): a clip is stored the same (local) day its recording
//! ended; where a lawful reason prevents that, at the latest `hours-after-return` hours
//! after the device returned to the unit (its dock). Time rules take `now` and the dock
//! time as arguments, so tests never wait.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, Utc};

use crate::config::DeadlinePolicy;

/// A clip's deadline and whether it was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The latest storage time.
    pub due: DateTime<Utc>,
    /// Stored (or, for pending clips, now) after `due`.
    pub late: bool,
}

/// The end of the local day `t` falls in: the next local midnight.
pub fn end_of_day(t: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let local = t.with_timezone(&offset);
    let next = local.date_naive() + Duration::days(1);
    let midnight = next.and_time(NaiveTime::MIN);
    // A fixed offset has no gaps or folds: the local midnight exists exactly once.
    DateTime::<FixedOffset>::from_naive_utc_and_offset(midnight - offset, offset)
        .with_timezone(&Utc)
}

/// The deadline of a clip whose recording ended at `recorded_end`, on a device that
/// docked at `returned` and was stored at `stored`. A delay `reason` (one of the policy's
/// codes, checked by the caller) extends it to `returned + hours-after-return` when that
/// is later than the same-day deadline.
pub fn deadline(
    policy: &DeadlinePolicy,
    offset: FixedOffset,
    recorded_end: DateTime<Utc>,
    returned: DateTime<Utc>,
    reason: Option<&str>,
    stored: DateTime<Utc>,
) -> Deadline {
    let same_day = end_of_day(recorded_end, offset);
    let due = match reason {
        Some(_) => same_day.max(returned + Duration::hours(i64::from(policy.hours_after_return))),
        None => same_day,
    };
    Deadline {
        due,
        late: stored > due,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn policy() -> DeadlinePolicy {
        DeadlinePolicy {
            hours_after_return: 24,
            warn_before_minutes: 120,
            reasons: BTreeMap::from([("remote".into(), "偏远地区".into())]),
        }
    }

    fn beijing() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn the_same_day_is_the_local_day_not_the_utc_day() {
        // 07:30 Beijing on the 21st is 23:30 UTC on the 20th: the deadline is Beijing midnight.
        let due = end_of_day(t("2026-11-21T07:30:00+08:00"), beijing());
        assert_eq!(due, t("2026-11-22T00:00:00+08:00"));
        let due = end_of_day(t("2026-11-21T23:59:59+08:00"), beijing());
        assert_eq!(due, t("2026-11-22T00:00:00+08:00"));
        let due = end_of_day(t("2026-11-22T00:00:00+08:00"), beijing());
        assert_eq!(due, t("2026-11-23T00:00:00+08:00"));
    }

    #[test]
    fn stored_the_same_day_is_on_time_the_next_morning_is_late() {
        let end = t("2026-11-21T16:00:00+08:00");
        let docked = t("2026-11-21T18:00:00+08:00");
        let on_time = deadline(
            &policy(),
            beijing(),
            end,
            docked,
            None,
            t("2026-11-21T18:10:00+08:00"),
        );
        assert!(!on_time.late);
        let late = deadline(
            &policy(),
            beijing(),
            end,
            docked,
            None,
            t("2026-11-22T08:00:00+08:00"),
        );
        assert!(late.late);
        assert_eq!(late.due, t("2026-11-22T00:00:00+08:00"));
    }

    #[test]
    fn a_lawful_delay_allows_24_hours_after_return_and_no_more() {
        // Recorded in a remote township, back at the unit the next evening.
        let end = t("2026-11-21T16:00:00+08:00");
        let back = t("2026-11-22T20:00:00+08:00");
        let d = deadline(
            &policy(),
            beijing(),
            end,
            back,
            Some("remote"),
            t("2026-11-23T19:00:00+08:00"),
        );
        assert_eq!(d.due, t("2026-11-23T20:00:00+08:00"));
        assert!(!d.late);
        let d = deadline(
            &policy(),
            beijing(),
            end,
            back,
            Some("remote"),
            t("2026-11-23T20:00:01+08:00"),
        );
        assert!(d.late);
    }
}
