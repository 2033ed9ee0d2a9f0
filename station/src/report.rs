//! The integrity report (证据完整性报告): clips and bytes ingested, verified, flagged (with
//! finding codes), unattested and late, for a device, a case, a dock session or a period.
//! JSON for machines, a readable HTML page in Chinese for clerks.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, FixedOffset, Utc};
use rusqlite::params_from_iter;
use serde::Serialize;

use crate::ledger::{Ledger, LedgerError, SessionId, db_time, parse_db_time};

/// What a report covers. Empty means everything.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// One device.
    pub device: Option<String>,
    /// One case (clips whose record names it, or bound to it later).
    pub case: Option<String>,
    /// One dock session.
    pub session: Option<SessionId>,
    /// Clips whose recording ended at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Clips whose recording ended before this time.
    pub to: Option<DateTime<Utc>>,
}

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
    /// 编号.
    pub number: String,
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
    /// `verified`, `mismatch` or `missing`.
    pub status: &'static str,
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
    /// Totals.
    pub totals: Totals,
    /// Clips.
    pub clips: Vec<ClipRow>,
    /// Unattested files.
    pub unattested: Vec<UnattestedRow>,
    /// Findings.
    pub findings: Vec<FindingRow>,
    /// Quarantined slots.
    pub quarantine: Vec<QuarantineRow>,
}

fn hex_opt(v: Option<Vec<u8>>) -> Option<String> {
    v.map(hex::encode)
}

impl Report {
    #[expect(
        clippy::too_many_lines,
        reason = "four queries (clips, unattested, findings, quarantine) with the same filters, in order"
    )]
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
        let local = |t: &str| -> Result<String, LedgerError> {
            Ok(parse_db_time(t)?
                .with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string())
        };
        let mut filter = String::from(" WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(d) = &query.device {
            args.push(d.clone());
            let _ = write!(filter, " AND c.serial = ?{}", args.len());
        }
        if let Some(case) = &query.case {
            args.push(case.clone());
            let n = args.len();
            let _ = write!(
                filter,
                " AND (c.case_number = ?{n} OR c.record_hash IN (SELECT subject FROM bindings WHERE case_number = ?{n}))"
            );
        }
        if let Some(s) = query.session {
            args.push(s.0.to_string());
            let _ = write!(filter, " AND r.session = ?{}", args.len());
        }
        if let Some(t) = query.from {
            args.push(db_time(t));
            let _ = write!(filter, " AND c.recorded_end >= ?{}", args.len());
        }
        if let Some(t) = query.to {
            args.push(db_time(t));
            let _ = write!(filter, " AND c.recorded_end < ?{}", args.len());
        }
        let conn = ledger.conn();
        let sql = format!(
            "SELECT c.serial, c.seq, r.log_index, c.number,
                    COALESCE(c.case_number, (SELECT b.case_number FROM bindings b
                        JOIN records br ON br.hash = b.record_hash
                        WHERE b.subject = c.record_hash ORDER BY br.log_index DESC LIMIT 1)),
                    c.file, c.officer_cert, c.signed_size, c.signed_sha256, c.stored_sha256,
                    c.stored_size, c.recorded_end, c.deadline, c.stored_at, c.late, c.delay_reason
             FROM clips c JOIN records r ON r.hash = c.record_hash {filter}
             ORDER BY c.serial, c.seq"
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        let mut clips = Vec::new();
        let mut totals = Totals::default();
        while let Some(r) = rows.next()? {
            let signed: Vec<u8> = r.get(8)?;
            let stored: Option<Vec<u8>> = r.get(9)?;
            let size = r.get::<_, i64>(7)?.unsigned_abs();
            let stored_size: Option<i64> = r.get(10)?;
            let status = match &stored {
                None => "missing",
                Some(h) if *h == signed && stored_size.map(i64::unsigned_abs) == Some(size) => {
                    "verified"
                }
                Some(_) => "mismatch",
            };
            let late: bool = r.get(14)?;
            totals.clips += 1;
            totals.bytes += stored_size.map_or(0, i64::unsigned_abs);
            match status {
                "verified" => totals.verified += 1,
                "mismatch" => totals.mismatched += 1,
                _ => totals.missing += 1,
            }
            totals.late += usize::from(late);
            clips.push(ClipRow {
                serial: r.get(0)?,
                seq: r.get::<_, i64>(1)?.unsigned_abs(),
                log_index: r.get::<_, i64>(2)?.unsigned_abs(),
                number: r.get(3)?,
                case_number: r.get(4)?,
                file: r.get(5)?,
                officer_cert: r.get(6)?,
                size,
                signed_sha256: hex::encode(signed),
                stored_sha256: hex_opt(stored),
                status,
                recorded_end: local(&r.get::<_, String>(11)?)?,
                deadline: local(&r.get::<_, String>(12)?)?,
                stored_at: local(&r.get::<_, String>(13)?)?,
                late,
                delay_reason: r.get(15)?,
            });
        }
        let serials: BTreeSet<String> = clips.iter().map(|c| c.serial.clone()).collect();
        let files: BTreeSet<(String, String)> = clips
            .iter()
            .map(|c| (c.serial.clone(), c.file.clone()))
            .collect();
        let wanted_serial = |s: &Option<String>| match (&query.device, s) {
            (Some(d), Some(s)) => d == s,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let in_time = |at: &str| {
            let t = parse_db_time(at).ok();
            query.from.is_none_or(|f| t.is_some_and(|t| t >= f))
                && query.to.is_none_or(|to| t.is_some_and(|t| t < to))
        };

        let mut unattested = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT serial, file, size, sha256, stored_at, session FROM unattested ORDER BY serial, file",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let serial: String = r.get(0)?;
            let at: String = r.get(4)?;
            let session: i64 = r.get(5)?;
            if !wanted_serial(&Some(serial.clone()))
                || query.case.is_some()
                || query.session.is_some_and(|s| s.0 != session)
                || !in_time(&at)
            {
                continue;
            }
            let size = r.get::<_, i64>(2)?.unsigned_abs();
            totals.unattested += 1;
            totals.unattested_bytes += size;
            unattested.push(UnattestedRow {
                serial,
                file: r.get(1)?,
                size,
                sha256: hex::encode(r.get::<_, Vec<u8>>(3)?),
                stored_at: local(&at)?,
            });
        }

        let mut findings = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT session, serial, level, code, subject, detail, at FROM findings ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let row = FindingRow {
                session: r.get(0)?,
                serial: r.get(1)?,
                level: r.get(2)?,
                code: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
                at: r.get(6)?,
            };
            let keep = wanted_serial(&row.serial)
                && query.session.is_none_or(|s| s.0 == row.session)
                && in_time(&row.at)
                && query.case.as_ref().is_none_or(|_| {
                    // A case report lists the findings about its clips.
                    row.serial.as_ref().is_some_and(|s| serials.contains(s))
                        && files
                            .iter()
                            .any(|(s, f)| Some(s) == row.serial.as_ref() && row.subject.contains(f))
                });
            if keep {
                findings.push(FindingRow {
                    at: local(&row.at)?,
                    ..row
                });
            }
        }
        totals.findings = findings.len();

        let mut quarantine = Vec::new();
        if query.case.is_none() {
            let mut stmt = conn.prepare(
                "SELECT session, claimed, folder, files, bytes, at FROM quarantine ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let row = QuarantineRow {
                    session: r.get(0)?,
                    claimed: r.get(1)?,
                    folder: r.get(2)?,
                    files: r.get::<_, i64>(3)?.unsigned_abs(),
                    bytes: r.get::<_, i64>(4)?.unsigned_abs(),
                    at: r.get(5)?,
                };
                if wanted_serial(&row.claimed)
                    && query.session.is_none_or(|s| s.0 == row.session)
                    && in_time(&row.at)
                {
                    quarantine.push(QuarantineRow {
                        at: local(&row.at)?,
                        ..row
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
            scope: scope_text(query, offset),
            checkpoint: ledger
                .latest_checkpoint()?
                .map(|c| (c.size, B64.encode(c.root))),
            totals,
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

    /// The report as a self-contained HTML page (Chinese, for clerks).
    #[expect(
        clippy::too_many_lines,
        reason = "the page's sections in reading order; splitting would scatter the markup"
    )]
    pub fn to_html(&self) -> String {
        let t = &self.totals;
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <title>证据完整性报告 · {station}</title><style>{CSS}</style></head><body>\n\
             <h1>执法音视频证据完整性报告</h1>\n\
             <p>采集站：{station}<br>范围：{scope}<br>生成时间：{at}<br>透明日志检查点：{cp}</p>\n",
            station = esc(&self.station),
            scope = esc(&self.scope),
            at = esc(&self.generated_at),
            cp = self.checkpoint.as_ref().map_or_else(
                || "（尚无）".to_owned(),
                |(size, root)| format!("共 {size} 条记录，根哈希 <code>{}</code>", esc(root))
            ),
        );
        let verdict = if self.is_clean() {
            "<p class=\"ok\">结论：全部视音频文件签封有效、哈希一致，未发现问题。</p>"
        } else {
            "<p class=\"bad\">结论：发现问题，详见下方“发现的问题”。所有文件均已保留，未删除任何内容。</p>"
        };
        h.push_str(verdict);
        let _ = write!(
            h,
            "<h2>汇总</h2><table class=\"totals\">\
             <tr><th>有签封记录的文件</th><td>{}</td></tr>\
             <tr><th>存储字节数</th><td>{}</td></tr>\
             <tr><th>校验通过</th><td>{}</td></tr>\
             <tr><th>哈希不一致（已保留并标记）</th><td>{}</td></tr>\
             <tr><th>设备上缺失</th><td>{}</td></tr>\
             <tr><th>无签封记录（站端计算哈希后保存）</th><td>{}（{} 字节）</td></tr>\
             <tr><th>超期存储</th><td>{}</td></tr>\
             <tr><th>隔离的设备</th><td>{}</td></tr>\
             <tr><th>发现的问题</th><td>{}</td></tr></table>",
            t.clips,
            t.bytes,
            t.verified,
            t.mismatched,
            t.missing,
            t.unattested,
            t.unattested_bytes,
            t.late,
            t.quarantined,
            t.findings
        );
        h.push('\n');
        h.push_str(
            "<h2>视音频文件</h2><table><tr><th>设备</th><th>序号</th><th>编号</th><th>案件编号</th>\
             <th>文件</th><th>执法证号</th><th>大小</th><th>SHA-256</th><th>状态</th>\
             <th>录制结束</th><th>存储时限</th><th>存储时间</th><th>是否超期</th></tr>\n",
        );
        for c in &self.clips {
            let status = match c.status {
                "verified" => "<span class=\"ok\">校验通过</span>",
                "mismatch" => "<span class=\"bad\">哈希不一致</span>",
                _ => "<span class=\"bad\">缺失</span>",
            };
            let late = if c.late {
                format!(
                    "<span class=\"bad\">超期</span>{}",
                    c.delay_reason
                        .as_deref()
                        .map(|r| format!("（延迟理由：{}）", esc(r)))
                        .unwrap_or_default()
                )
            } else {
                "按时".to_owned()
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td><code>{}</code></td><td>{status}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{late}</td></tr>",
                esc(&c.serial),
                c.seq,
                esc(&c.number),
                esc(c.case_number.as_deref().unwrap_or("—")),
                esc(&c.file),
                esc(&c.officer_cert),
                c.size,
                esc(&c.signed_sha256),
                esc(&c.recorded_end),
                esc(&c.deadline),
                esc(&c.stored_at),
            );
        }
        h.push_str("</table>\n");
        if !self.unattested.is_empty() {
            h.push_str(
                "<h2>无签封记录的文件</h2><table><tr><th>设备</th><th>文件</th><th>大小</th>\
                 <th>SHA-256（站端计算）</th><th>存储时间</th></tr>\n",
            );
            for u in &self.unattested {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(&u.serial),
                    esc(&u.file),
                    u.size,
                    esc(&u.sha256),
                    esc(&u.stored_at)
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str("<h2>发现的问题</h2>");
        if self.findings.is_empty() {
            h.push_str("<p>无。</p>\n");
        } else {
            h.push_str(
                "<table><tr><th>级别</th><th>代码</th><th>设备</th><th>对象</th><th>说明</th>\
                 <th>时间</th></tr>\n",
            );
            for f in &self.findings {
                let level = if f.level == "error" {
                    "错误"
                } else {
                    "警告"
                };
                let _ = writeln!(
                    h,
                    "<tr class=\"{}\"><td>{level}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.level),
                    esc(&f.code),
                    esc(f.serial.as_deref().unwrap_or("—")),
                    esc(&f.subject),
                    esc(&f.detail),
                    esc(&f.at)
                );
            }
            h.push_str("</table>\n");
        }
        if !self.quarantine.is_empty() {
            h.push_str(
                "<h2>隔离的设备（未登记或身份不符，文件单独保存，未混入证据）</h2><table>\
                 <tr><th>声称的设备</th><th>保存位置</th><th>文件数</th><th>字节数</th><th>时间</th></tr>\n",
            );
            for q in &self.quarantine {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(q.claimed.as_deref().unwrap_or("未知")),
                    esc(&q.folder),
                    q.files,
                    q.bytes,
                    esc(&q.at)
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str(
            "<p class=\"note\">说明：每个文件的 SHA-256 与设备签封记录中的值比对；记录的签名、\
             设备哈希链与透明日志可用 <code>custody verify</code> 或 openssl、sha256sum 独立核验。</p>\
             </body></html>\n",
        );
        h
    }
}

const CSS: &str = "body{font-family:'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em}\
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #999;padding:.25em .5em;\
font-size:.9em;text-align:left}code{font-size:.8em;word-break:break-all}.ok{color:#060}\
.bad,.error{color:#b00}.warning{color:#a60}.note{color:#555;font-size:.85em}";

fn scope_text(q: &ReportQuery, offset: FixedOffset) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &q.device {
        parts.push(format!("设备 {d}"));
    }
    if let Some(c) = &q.case {
        parts.push(format!("案件 {c}"));
    }
    if let Some(s) = q.session {
        parts.push(format!("第 {} 次接入", s.0));
    }
    let fmt = |t: DateTime<Utc>| {
        t.with_timezone(&offset)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    match (q.from, q.to) {
        (Some(f), Some(t)) => parts.push(format!("录制时间 {} 至 {}", fmt(f), fmt(t))),
        (Some(f), None) => parts.push(format!("录制时间 {} 起", fmt(f))),
        (None, Some(t)) => parts.push(format!("录制时间 {} 前", fmt(t))),
        (None, None) => {}
    }
    if parts.is_empty() {
        "全部".into()
    } else {
        parts.join("，")
    }
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
