//! 工作日: working days under the official State Council holiday calendar (holiday-cn
//! data, one JSON file per year). A date the data does not cover is an explicit
//! [`CalendarError::Unknown`], never a guess from weekends alone.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;

/// The calendar files shipped with this build (`data/holiday-cn`), 2019 to 2026.
const EMBEDDED: &[&str] = &[
    include_str!("../data/holiday-cn/2019.json"),
    include_str!("../data/holiday-cn/2020.json"),
    include_str!("../data/holiday-cn/2021.json"),
    include_str!("../data/holiday-cn/2022.json"),
    include_str!("../data/holiday-cn/2023.json"),
    include_str!("../data/holiday-cn/2024.json"),
    include_str!("../data/holiday-cn/2025.json"),
    include_str!("../data/holiday-cn/2026.json"),
];
/// From this day of December on, a date needs the next year's file too: New Year blocks
/// and their adjusted working days reach back into late December (2018-12-29 was one).
const DECEMBER_CUTOFF: u32 = 20;
/// Longest span of working days one call may count (about four years).
const MAX_WORKING_DAYS: u32 = 1000;

/// A calendar question that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The date is outside the years the holiday data covers.
    #[error(
        "calendar unknown for {date}: no official holiday data for {year} (load the State Council notice's holiday-cn file)"
    )]
    Unknown {
        /// The date asked about.
        date: NaiveDate,
        /// The year whose file is missing.
        year: i32,
    },
    /// A calendar file that cannot be read.
    #[error("holiday file {name}: {why}")]
    BadFile {
        /// File name or `embedded`.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// More working days than one call counts.
    #[error("{0} working days is more than the {MAX_WORKING_DAYS} one deadline may span")]
    TooFar(u32),
}

#[derive(Deserialize)]
struct YearFile {
    year: i32,
    days: Vec<DayEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DayEntry {
    date: NaiveDate,
    is_off_day: bool,
}

/// The official calendar: which years are known, and which dates differ from the
/// Monday-to-Friday rule.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    years: BTreeSet<i32>,
    exceptions: HashMap<NaiveDate, bool>,
}

impl Calendar {
    /// The calendar shipped with this build.
    ///
    /// # Errors
    /// Never in a correct build (the shipped files are tested).
    pub fn embedded() -> Result<Self, CalendarError> {
        let mut cal = Self::default();
        for text in EMBEDDED {
            cal.add_year(text, "embedded")?;
        }
        Ok(cal)
    }

    /// Adds every `*.json` year file in `dir` (newer notices, e.g. next year's, once the
    /// State Council publishes it). A year file with no days is a placeholder and skipped.
    ///
    /// # Errors
    /// [`CalendarError::BadFile`] for an unreadable or malformed file.
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), CalendarError> {
        let bad = |name: &Path, why: String| CalendarError::BadFile {
            name: name.display().to_string(),
            why,
        };
        let entries = fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| bad(dir, e.to_string()))?.path();
            let is_year = path
                .file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()));
            if is_year && path.extension().is_some_and(|e| e == "json") {
                let text = fs::read_to_string(&path).map_err(|e| bad(&path, e.to_string()))?;
                self.add_year(&text, &path.display().to_string())?;
            }
        }
        Ok(())
    }

    fn add_year(&mut self, text: &str, name: &str) -> Result<(), CalendarError> {
        let file: YearFile = serde_json::from_str(text).map_err(|e| CalendarError::BadFile {
            name: name.into(),
            why: e.to_string(),
        })?;
        if file.days.is_empty() {
            return Ok(());
        }
        self.years.insert(file.year);
        for day in file.days {
            // A date listed by two notices keeps the later notice's verdict (load order).
            self.exceptions.insert(day.date, !day.is_off_day);
        }
        Ok(())
    }

    /// The years whose official data is loaded.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// Whether `date` is a working day (工作日).
    ///
    /// # Errors
    /// [`CalendarError::Unknown`] when the data does not cover it.
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        let year = date.year();
        let needed = if date.month() == 12 && date.day() >= DECEMBER_CUTOFF {
            [year, year + 1]
        } else {
            [year, year]
        };
        if let Some(&missing) = needed.iter().find(|y| !self.years.contains(y)) {
            return Err(CalendarError::Unknown {
                date,
                year: missing,
            });
        }
        Ok(self
            .exceptions
            .get(&date)
            .copied()
            .unwrap_or(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun)))
    }

    /// The date `n` working days after `date` (the day itself not counted), e.g. the last
    /// day of a "7个工作日" period. `n == 0` gives `date`.
    ///
    /// # Errors
    /// [`CalendarError::Unknown`] when the count runs into a date the data does not
    /// cover; [`CalendarError::TooFar`] for more than 1000 days.
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        if n > MAX_WORKING_DAYS {
            return Err(CalendarError::TooFar(n));
        }
        let (mut day, mut left) = (date, n);
        while left > 0 {
            day = day
                .checked_add_days(Days::new(1))
                .ok_or(CalendarError::Unknown {
                    date: day,
                    year: day.year(),
                })?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn cal() -> Calendar {
        Calendar::embedded().unwrap()
    }

    #[test]
    fn shipped_data_covers_2019_to_2026() {
        assert_eq!(
            cal().years().collect::<Vec<_>>(),
            (2019..=2026).collect::<Vec<_>>()
        );
    }

    #[test]
    fn national_day_week_2024_is_skipped_and_its_adjusted_saturday_counts() {
        let c = cal();
        // 2024-10-01..07 off; Sun 2024-09-29 and Sat 2024-10-12 are adjusted working days.
        assert!(c.is_working_day(d("2024-09-29")).unwrap());
        assert!(!c.is_working_day(d("2024-10-07")).unwrap());
        assert!(c.is_working_day(d("2024-10-12")).unwrap());
        // From Mon 2024-09-30: 1 = Tue 10-08 (after the holiday), ..., 5 = Sat 10-12.
        assert_eq!(
            c.add_working_days(d("2024-09-30"), 1).unwrap(),
            d("2024-10-08")
        );
        assert_eq!(
            c.add_working_days(d("2024-09-30"), 5).unwrap(),
            d("2024-10-12")
        );
        assert_eq!(
            c.add_working_days(d("2024-09-30"), 6).unwrap(),
            d("2024-10-14")
        );
    }

    #[test]
    fn spring_festival_2025_with_its_two_adjusted_weekend_days() {
        let c = cal();
        // 2025-01-28..02-04 off (除夕 now statutory); Sun 01-26 and Sat 02-08 are working days.
        assert!(c.is_working_day(d("2025-01-26")).unwrap());
        assert!(!c.is_working_day(d("2025-01-28")).unwrap());
        assert!(!c.is_working_day(d("2025-02-04")).unwrap());
        assert!(c.is_working_day(d("2025-02-08")).unwrap());
        // 7 working days from Mon 2025-01-27: 02-05, 06, 07, 08(Sat), 10, 11, 12.
        assert_eq!(
            c.add_working_days(d("2025-01-27"), 7).unwrap(),
            d("2025-02-12")
        );
    }

    #[test]
    fn a_december_date_is_read_from_the_next_years_notice() {
        // 2018-12-29 (Sat) was a working day and 12-31 (Mon) a holiday, both set by the
        // notice in 2019.json; 2018 itself has no file.
        let c = cal();
        assert_eq!(
            c.is_working_day(d("2018-12-29")).unwrap_err(),
            CalendarError::Unknown {
                date: d("2018-12-29"),
                year: 2018
            }
        );
        let mut only_2019 = Calendar::default();
        only_2019
            .add_year(include_str!("../data/holiday-cn/2019.json"), "2019")
            .unwrap();
        assert!(only_2019.exceptions[&d("2018-12-29")]);
        assert!(!only_2019.exceptions[&d("2018-12-31")]);
    }

    #[test]
    fn outside_the_data_is_calendar_unknown_never_a_guess() {
        let c = cal();
        assert!(matches!(
            c.is_working_day(d("2027-03-01")),
            Err(CalendarError::Unknown { year: 2027, .. })
        ));
        // Late December 2026 depends on the 2027 notice, not yet published.
        assert!(matches!(
            c.is_working_day(d("2026-12-28")),
            Err(CalendarError::Unknown { year: 2027, .. })
        ));
        assert!(c.is_working_day(d("2026-12-18")).unwrap());
        assert!(matches!(
            c.add_working_days(d("2026-12-10"), 10),
            Err(CalendarError::Unknown { year: 2027, .. })
        ));
        assert!(matches!(
            c.is_working_day(d("2018-06-01")),
            Err(CalendarError::Unknown { year: 2018, .. })
        ));
    }

    #[test]
    fn a_newer_notice_loaded_from_a_folder_extends_the_calendar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("2027.json"), r#"{"year":2027,"papers":[],"days":[{"name":"元旦","date":"2027-01-01","isOffDay":true}]}"#).unwrap();
        std::fs::write(
            dir.path().join("2028.json"),
            r#"{"year":2028,"papers":[],"days":[]}"#,
        )
        .unwrap();
        let mut c = cal();
        c.load_dir(dir.path()).unwrap();
        assert!(!c.is_working_day(d("2027-01-01")).unwrap());
        assert!(c.is_working_day(d("2026-12-28")).unwrap());
        // An empty placeholder file (as upstream ships before the notice) adds nothing.
        assert!(c.is_working_day(d("2028-03-01")).is_err());
        std::fs::write(dir.path().join("2029.json"), "{").unwrap();
        assert!(matches!(
            c.load_dir(dir.path()),
            Err(CalendarError::BadFile { .. })
        ));
    }
}
