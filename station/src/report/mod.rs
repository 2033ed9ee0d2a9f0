//! The integrity report (证据完整性报告): clips and bytes ingested, verified, flagged (with
//! finding codes), unattested and late, for a device, a case, a dock session or a period.
//! JSON for machines, a readable HTML page in Chinese for clerks ([`html`]).

mod html;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, FixedOffset, Utc};
use custody::Speaker;
use serde::Serialize;

pub use crate::ledger::{ClipStatus, ReportQuery};
use crate::ledger::{Ledger, LedgerError};

/// Totals at the top of a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Clips with a record.
    pub clips: usize,
    /// Their bytes as stored.
    pub bytes: u64,
    /// Stored with the signed hash and size.
    pub verified: usize,
    /// Stored, but not with the signed hash (kept and flagged).
    pub mismatched: usize,
    /// Not found on the device.
    pub missing: usize,
    /// Files without a record, stored with the station's hash.
    pub unattested: usize,
    /// Their bytes.
    pub unattested_bytes: u64,
    /// Stored after their deadline.
    pub late: usize,
    /// Findings listed.
    pub findings: usize,
    /// Slots quarantined.
    pub quarantined: usize,
}

/// One clip in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ClipRow {
    /// Device.
    pub serial: String,
    /// Record seq.
    pub seq: u64,
    /// Leaf index in the station's log.
    pub log_index: u64,
    /// SHA-256 of its record (what requests, approvals and access events name).
    pub record: custody::RecordHash,
    /// 编号: its number under its case once a binding record gave one (e.g.
    /// `襄环罚〔2019〕75号-视-001`), else the number it was sealed with.
    pub number: String,
    /// The number it was sealed with (a provisional one before the case existed).
    pub sealed_number: String,
    /// 案件编号 (from the record or a later binding).
    pub case_number: Option<String>,
    /// File on the device.
    pub file: String,
    /// 执法证号 of the officer.
    pub officer_cert: String,
    /// Size the record states.
    pub size: u64,
    /// SHA-256 the record states.
    pub signed_sha256: String,
    /// SHA-256 of what was stored, if anything was.
    pub stored_sha256: Option<String>,
    /// What became of its media.
    pub status: ClipStatus,
    /// When the recording ended.
    pub recorded_end: String,
    /// Storage deadline.
    pub deadline: String,
    /// When it was stored.
    pub stored_at: String,
    /// Stored after the deadline.
    pub late: bool,
    /// Lawful delay reason, if declared.
    pub delay_reason: Option<String>,
    /// 证明对象, from the clip's record or a later annotation.
    pub proves: Option<String>,
    /// 对话人员身份, from annotations.
    pub speakers: Vec<Speaker>,
    /// 主要对话内容, from annotations.
    pub summary: Option<String>,
    /// Duration in milliseconds, from the record's media facts.
    pub duration_ms: Option<u64>,
    /// Start and end with the clock's source and error (the record's own times).
    pub time: custody::TimeSpan,
    /// Where it was recorded (WGS-84), if the device had a fix.
    pub location: Option<custody::Location>,
    /// 姓名 of the officer who recorded it.
    pub officer_name: String,
}

impl ClipRow {
    /// `start – end（clock source, error ±N ms）` for people.
    pub fn time_zh(&self) -> String {
        let t = &self.time;
        format!(
            "{} – {}（{}，误差 ±{} ms）",
            t.start.format("%Y-%m-%d %H:%M:%S"),
            t.end.format("%H:%M:%S"),
            match t.source {
                custody::ClockSource::Rtc => "设备时钟",
                custody::ClockSource::Gnss => "卫星授时",
                custody::ClockSource::Ntp => "网络授时",
                custody::ClockSource::Station => "采集站校时",
            },
            t.error_ms
        )
    }

    /// `姓名（执法证号）` of the officer.
    pub fn officer_zh(&self) -> String {
        format!("{}（{}）", self.officer_name, self.officer_cert)
    }

    /// `latitude, longitude` (WGS-84), or `—` without a fix.
    pub fn place_zh(&self) -> String {
        self.location
            .as_ref()
            .map_or("—".into(), |l| format!("{:.5}, {:.5}", l.lat, l.lon))
    }
}

/// A file stored without a record.
#[derive(Debug, Clone, Serialize)]
pub struct UnattestedRow {
    /// Device.
    pub serial: String,
    /// File on the device.
    pub file: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, computed by the station.
    pub sha256: String,
    /// When it was stored.
    pub stored_at: String,
}

/// A finding as the ledger keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    /// Session it came from.
    pub session: i64,
    /// Device, if known.
    pub serial: Option<String>,
    /// `error` or `warning`.
    pub level: String,
    /// Stable code.
    pub code: String,
    /// What the code means, in Chinese (for clerks); the code itself when unknown.
    pub title: String,
    /// What it is about.
    pub subject: String,
    /// Explanation.
    pub detail: String,
    /// When.
    pub at: String,
}

/// A quarantined slot.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineRow {
    /// Session.
    pub session: i64,
    /// Serial the device claimed, if any.
    pub claimed: Option<String>,
    /// Where its files were kept.
    pub folder: String,
    /// Files kept.
    pub files: u64,
    /// Bytes kept.
    pub bytes: u64,
    /// When.
    pub at: String,
}

/// An integrity report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it was made.
    pub generated_at: String,
    /// The station's log origin.
    pub station: String,
    /// What it covers, in words.
    pub scope: String,
    /// The latest signed checkpoint: size and root (base64).
    pub checkpoint: Option<(u64, String)>,
    /// Totals (of every clip, when only one page is listed).
    pub totals: Totals,
    /// Which page of the clips this is, when only one page is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<ReportPage>,
    /// Clips.
    pub clips: Vec<ClipRow>,
    /// Unattested files.
    pub unattested: Vec<UnattestedRow>,
    /// Findings.
    pub findings: Vec<FindingRow>,
    /// Quarantined slots.
    pub quarantine: Vec<QuarantineRow>,
}

/// Times as clerks read them: the agency's offset, to the second.
/// Which page of a report's clips is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportPage {
    /// From 0.
    pub index: usize,
    /// How many pages the clips make (at least 1).
    pub pages: usize,
    /// Clips per page.
    pub per_page: usize,
}

fn local(t: DateTime<Utc>, offset: FixedOffset) -> String {
    t.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The clips of `query`, with what annotations said of them, counted into `totals`.
fn clip_rows(
    ledger: &Ledger,
    found: Vec<crate::ledger::LedgerClip>,
    offset: FixedOffset,
) -> Result<Vec<ClipRow>, LedgerError> {
    let notes = ledger.clip_notes(&found.iter().map(|c| c.serial.as_str()).collect())?;
    let mut clips = Vec::new();
    for c in found {
        let status = c.status();
        let note = notes.get(&c.record).cloned().unwrap_or_default();
        clips.push(ClipRow {
            number: c
                .case_clip_number
                .clone()
                .unwrap_or_else(|| c.sealed_number.clone()),
            sealed_number: c.sealed_number,
            serial: c.serial,
            seq: c.seq,
            log_index: c.log_index,
            record: c.record,
            case_number: c.case_number,
            file: c.file,
            officer_cert: c.officer_cert,
            size: c.signed.1,
            signed_sha256: c.signed.0.to_hex(),
            stored_sha256: c.stored.map(|(h, _)| h.to_hex()),
            status,
            recorded_end: local(c.recorded_end, offset),
            deadline: local(c.deadline, offset),
            stored_at: local(c.stored_at, offset),
            late: c.late,
            delay_reason: c.delay_reason,
            proves: note.proves.or(c.proves),
            speakers: note.speakers,
            summary: note.summary,
            duration_ms: c.duration_ms,
            time: c.time,
            location: c.location,
            officer_name: c.officer_name,
        });
    }
    Ok(clips)
}

/// Whether `query` covers clips rather than devices and periods (a case's, an
/// officer's): its report lists no unattested file or quarantined slot, and only the
/// findings about its clips.
fn by_clip(query: &ReportQuery) -> bool {
    query.case.is_some() || query.officer.is_some()
}

/// Page `index` of `per_page` clips `query` covers, as rows, with how many it covers in
/// all: a search's view (no findings, unattested files or quarantine read).
///
/// # Errors
/// SQL failure.
pub(crate) fn clip_page(
    ledger: &Ledger,
    query: &ReportQuery,
    offset: FixedOffset,
    (index, per_page): (usize, usize),
) -> Result<(Vec<ClipRow>, usize), LedgerError> {
    let total = ledger.clip_totals(query)?.clips;
    let found = ledger.clips_page(query, (index * per_page, per_page), total)?;
    Ok((clip_rows(ledger, found, offset)?, total))
}

/// Whether a row about device `serial` is in `query`'s devices.
fn wanted_serial(query: &ReportQuery, serial: Option<&String>) -> bool {
    match (&query.device, serial) {
        (Some(d), Some(s)) => d == s,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Whether time `t` is in `query`'s period.
fn in_time(query: &ReportQuery, t: DateTime<Utc>) -> bool {
    query.from.is_none_or(|f| t >= f) && query.to.is_none_or(|to| t < to)
}

/// The (device, file) of each clip.
fn clip_files(clips: &[crate::ledger::LedgerClip]) -> BTreeSet<(String, String)> {
    clips
        .iter()
        .map(|c| (c.serial.clone(), c.file.clone()))
        .collect()
}

/// The findings `query` covers. A report on a case or an officer lists those about its
/// clips, whose files `clip_files` gives (asked only when there are findings at all).
fn finding_rows(
    ledger: &Ledger,
    query: &ReportQuery,
    offset: FixedOffset,
    clip_files: impl FnOnce() -> Result<BTreeSet<(String, String)>, LedgerError>,
) -> Result<Vec<FindingRow>, LedgerError> {
    let recorded = ledger.findings()?;
    let by_clip = by_clip(query);
    let files = if by_clip && !recorded.is_empty() {
        clip_files()?
    } else {
        BTreeSet::new()
    };
    let mut findings = Vec::new();
    for f in recorded {
        let keep = wanted_serial(query, f.serial.as_ref())
            && query.session.is_none_or(|s| s == f.session)
            && in_time(query, f.at)
            && (!by_clip
                || files
                    .iter()
                    .any(|(s, file)| Some(s) == f.serial.as_ref() && f.subject.contains(file)));
        if keep {
            findings.push(FindingRow {
                session: f.session.0,
                serial: f.serial,
                level: f.level,
                title: custody::describe_zh(&f.code).map_or_else(|| f.code.clone(), str::to_owned),
                code: f.code,
                subject: f.subject,
                detail: f.detail,
                at: local(f.at, offset),
            });
        }
    }
    Ok(findings)
}

impl Report {
    /// Builds a report from the ledger. Times are shown in the agency's `offset`.
    ///
    /// # Errors
    /// SQL failure.
    pub fn build(
        ledger: &Ledger,
        origin: &str,
        query: &ReportQuery,
        offset: FixedOffset,
        now: DateTime<Utc>,
    ) -> Result<Self, LedgerError> {
        Self::assemble(ledger, (origin, offset, now), query, None)
    }

    /// As [`Report::build`], with only page `index` (from 0, clamped to the last) of
    /// `per_page` clips listed; the totals still cover every clip.
    ///
    /// # Errors
    /// SQL failure.
    pub fn page(
        ledger: &Ledger,
        origin: &str,
        query: &ReportQuery,
        (offset, now): (FixedOffset, DateTime<Utc>),
        (index, per_page): (usize, usize),
    ) -> Result<Self, LedgerError> {
        Self::assemble(
            ledger,
            (origin, offset, now),
            query,
            Some((index, per_page.max(1))),
        )
    }

    fn assemble(
        ledger: &Ledger,
        (origin, offset, now): (&str, FixedOffset, DateTime<Utc>),
        query: &ReportQuery,
        window: Option<(usize, usize)>,
    ) -> Result<Self, LedgerError> {
        let counted = ledger.clip_totals(query)?;
        let mut totals = Totals {
            clips: counted.clips,
            bytes: counted.bytes,
            verified: counted.verified,
            mismatched: counted.mismatched,
            missing: counted.missing,
            late: counted.late,
            ..Totals::default()
        };
        let page = window.map(|(index, per_page)| {
            let pages = counted.clips.div_ceil(per_page).max(1);
            ReportPage {
                index: index.min(pages - 1),
                pages,
                per_page,
            }
        });
        let found = match page {
            Some(p) => {
                ledger.clips_page(query, (p.index * p.per_page, p.per_page), counted.clips)?
            }
            None => ledger.clips(query)?,
        };
        // A report on a case or an officer covers those clips only: no unattested file or
        // quarantined slot, and the findings about any of its clips, not only this page's.
        let by_clip = by_clip(query);
        let findings = finding_rows(ledger, query, offset, || match page {
            Some(_) => Ok(clip_files(&ledger.clips(query)?)),
            None => Ok(clip_files(&found)),
        })?;
        let clips = clip_rows(ledger, found, offset)?;
        let wanted_serial = |s: Option<&String>| wanted_serial(query, s);
        let in_time = |t: DateTime<Utc>| in_time(query, t);

        let mut unattested = Vec::new();
        for u in ledger.unattested_files()? {
            if !wanted_serial(Some(&u.serial))
                || by_clip
                || query.session.is_some_and(|s| s != u.session)
                || !in_time(u.stored_at)
            {
                continue;
            }
            totals.unattested += 1;
            totals.unattested_bytes += u.size;
            unattested.push(UnattestedRow {
                serial: u.serial,
                file: u.file,
                size: u.size,
                sha256: u.sha256.to_hex(),
                stored_at: local(u.stored_at, offset),
            });
        }

        totals.findings = findings.len();

        let mut quarantine = Vec::new();
        if !by_clip {
            for q in ledger.quarantined()? {
                if wanted_serial(q.claimed.as_ref())
                    && query.session.is_none_or(|s| s == q.session)
                    && in_time(q.at)
                {
                    quarantine.push(QuarantineRow {
                        session: q.session.0,
                        claimed: q.claimed,
                        folder: q.folder,
                        files: q.files,
                        bytes: q.bytes,
                        at: local(q.at, offset),
                    });
                }
            }
        }
        totals.quarantined = quarantine.len();

        Ok(Self {
            generated_at: now
                .with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
            station: origin.into(),
            scope: html::scope_text(query, offset),
            checkpoint: ledger
                .latest_checkpoint()?
                .map(|c| (c.size, B64.encode(c.root))),
            totals,
            page,
            clips,
            unattested,
            findings,
            quarantine,
        })
    }

    /// True when every clip verified and nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.totals.clips == self.totals.verified
    }

    /// Writes `NAME.json` and `NAME.html` into `dir`, atomically; returns the HTML path.
    ///
    /// # Errors
    /// I/O failure.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        custody::layout::write_atomic(&dir.join(format!("{name}.json")), &json)?;
        let html = dir.join(format!("{name}.html"));
        custody::layout::write_atomic(&html, self.to_html().as_bytes())?;
        Ok(html)
    }
}
