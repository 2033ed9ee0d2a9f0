//! The recording part of the annual enforcement statistics (统计年报, due 31 January), per
//! act type (from the case number's document kind, by the agency's numbering template):
//! cases, cases with AV records, clips and hours, stored on time or late (with reasons),
//! bound and annotated shares, discs built, checked and cases archived. Every figure is
//! computed at one signed checkpoint, which the output names, so anyone holding the log
//! can recompute it. JSON for machines, CSV for spreadsheets, HTML in Chinese for people.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{NaiveDate, TimeZone as _};
use maud::{DOCTYPE, html};
use serde::Serialize;

use crate::report::ClipRow;
use crate::{ReportQuery, Station};

/// The act type of clips not bound to any case.
pub const UNBOUND: &str = "未关联案件";

/// One act type's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActFigures {
    /// 执法行为类别 (e.g. 行政处罚), or the document kind when the template names none.
    pub act_type: String,
    /// Cases with AV records or closed in the year.
    pub cases: usize,
    /// Of those, cases with at least one clip.
    pub cases_with_av: usize,
    /// Clips recorded in the year.
    pub clips: usize,
    /// Their hours (clips of unknown duration left out, counted below).
    pub hours: f64,
    /// Clips whose duration the record does not state.
    pub clips_without_duration: usize,
    /// Stored within the storage deadline.
    pub on_time: usize,
    /// Stored late.
    pub late: usize,
    /// Late clips by declared reason (`未申报理由` without one).
    pub late_reasons: BTreeMap<String, usize>,
    /// Clips bound to a case (numbered under it).
    pub bound: usize,
    /// Clips with 证明对象, speakers or main content.
    pub annotated: usize,
    /// Disc images built for the cases.
    pub discs_built: usize,
    /// Discs whose last check found them intact.
    pub discs_checked: usize,
    /// Cases with a whole disc set burned and checked (归档).
    pub cases_archived: usize,
}

/// The year's statistics.
#[derive(Debug, Clone, Serialize)]
pub struct Statistics {
    /// The year.
    pub year: i32,
    /// The agency (from the numbering template).
    pub agency: String,
    /// The station's log origin.
    pub origin: String,
    /// The checkpoint every figure was computed at: its size and root (base64, as in the
    /// checkpoint's note).
    pub checkpoint_size: u64,
    /// The checkpoint's root hash.
    pub checkpoint_root: String,
    /// When computed (local time).
    pub computed_at: String,
    /// One row per act type.
    pub rows: Vec<ActFigures>,
    /// All act types together.
    pub total: ActFigures,
}

impl Station {
    /// Computes the statistics of `year` (local calendar year) at a checkpoint signed now.
    ///
    /// # Errors
    /// No numbering template (act types come from it), or a ledger failure.
    pub fn statistics(&self, year: i32) -> anyhow::Result<Statistics> {
        let scheme = self.config().numbering.clone().context(
            "the statistics need the agency's numbering template (numbering = … in station.toml)",
        )?;
        let offset = self.config().utc_offset;
        let start = |y: i32| {
            NaiveDate::from_ymd_opt(y, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|t| offset.from_local_datetime(&t).single())
                .map(|t| t.with_timezone(&chrono::Utc))
                .with_context(|| format!("year {y} is out of range"))
        };
        let (from, to) = (start(year)?, start(year + 1)?);
        let checkpoint = self.ledger().sign_checkpoint(&self.signer, self.now())?;
        let clips = self
            .report(
                &ReportQuery {
                    from: Some(from),
                    to: Some(to),
                    ..ReportQuery::default()
                },
                self.now(),
            )?
            .clips;
        let act_of = |case: &str| -> String {
            match scheme.parse_document(case) {
                Ok(doc) => scheme.act_type(&doc.kind).unwrap_or(&doc.kind).to_owned(),
                Err(_) => UNBOUND.to_owned(),
            }
        };
        let mut rows: BTreeMap<String, ActFigures> = BTreeMap::new();
        let mut cases: BTreeMap<String, String> = BTreeMap::new();
        for clip in &clips {
            let act = clip
                .case_number
                .as_deref()
                .map_or(UNBOUND.to_owned(), act_of);
            if let Some(case) = &clip.case_number {
                cases.insert(case.clone(), act.clone());
            }
            self.count_clip(rows.entry(act.clone()).or_default(), clip);
        }
        let ledger = self.ledger();
        for closure in ledger.case_closures()? {
            if closure.ended >= from.with_timezone(&offset).date_naive()
                && closure.ended < to.with_timezone(&offset).date_naive()
            {
                let act = act_of(&closure.case_number);
                cases.insert(closure.case_number, act);
            }
        }
        let with_av: BTreeSet<&str> = clips
            .iter()
            .filter_map(|c| c.case_number.as_deref())
            .collect();
        for (case, act) in &cases {
            let row = rows.entry(act.clone()).or_default();
            row.cases += 1;
            row.cases_with_av += usize::from(with_av.contains(case.as_str()));
            let discs = ledger.case_discs(case)?;
            row.discs_built += discs.len();
            row.discs_checked += discs.iter().filter(|d| d.intact == Some(true)).count();
            row.cases_archived += usize::from(crate::case::archived(&discs));
        }
        drop(ledger);
        let mut total = ActFigures {
            act_type: "合计".into(),
            ..ActFigures::default()
        };
        let rows: Vec<ActFigures> = rows
            .into_iter()
            .map(|(act, mut row)| {
                row.act_type = act;
                add(&mut total, &row);
                row
            })
            .collect();
        Ok(Statistics {
            year,
            agency: scheme.agency.clone(),
            origin: self.config().origin.clone(),
            checkpoint_size: checkpoint.size,
            checkpoint_root: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                checkpoint.root,
            ),
            computed_at: self
                .now()
                .with_timezone(&offset)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            rows,
            total,
        })
    }

    fn count_clip(&self, row: &mut ActFigures, clip: &ClipRow) {
        row.clips += 1;
        #[expect(clippy::cast_precision_loss, reason = "hours for people")]
        match clip.duration_ms {
            Some(ms) => row.hours += ms as f64 / 3_600_000.0,
            None => row.clips_without_duration += 1,
        }
        if clip.late {
            row.late += 1;
            let reason = clip
                .delay_reason
                .as_ref()
                .map_or("未申报理由".to_owned(), |code| {
                    self.config()
                        .deadline
                        .reasons
                        .get(code)
                        .cloned()
                        .unwrap_or_else(|| code.clone())
                });
            *row.late_reasons.entry(reason).or_default() += 1;
        } else {
            row.on_time += 1;
        }
        row.bound += usize::from(clip.case_number.is_some());
        row.annotated += usize::from(
            clip.proves.is_some() || !clip.speakers.is_empty() || clip.summary.is_some(),
        );
    }

    /// Writes the statistics as `stats-<year>.json`, `.csv` and `.html` into `dir`;
    /// returns the HTML's path.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write_statistics(&self, stats: &Statistics, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let base = dir.join(format!("stats-{}", stats.year));
        let write = |ext: &str, bytes: &[u8]| {
            let path = base.with_extension(ext);
            custody::layout::write_atomic(&path, bytes)
                .with_context(|| format!("writing {}", path.display()))
                .map(|()| path)
        };
        write("json", &serde_json::to_vec_pretty(stats)?)?;
        write("csv", stats.to_csv().as_bytes())?;
        write("html", stats.to_html().as_bytes())
    }
}

fn add(total: &mut ActFigures, row: &ActFigures) {
    total.cases += row.cases;
    total.cases_with_av += row.cases_with_av;
    total.clips += row.clips;
    total.hours += row.hours;
    total.clips_without_duration += row.clips_without_duration;
    total.on_time += row.on_time;
    total.late += row.late;
    for (reason, n) in &row.late_reasons {
        *total.late_reasons.entry(reason.clone()).or_default() += n;
    }
    total.bound += row.bound;
    total.annotated += row.annotated;
    total.discs_built += row.discs_built;
    total.discs_checked += row.discs_checked;
    total.cases_archived += row.cases_archived;
}

/// The column titles, in the order of [`ActFigures::cells`].
const COLUMNS: [&str; 13] = [
    "执法行为类别",
    "案件数",
    "有音像记录的案件",
    "视音频文件",
    "时长（小时）",
    "时长未知",
    "按时存储",
    "超期存储",
    "超期理由",
    "已关联案件",
    "已标注",
    "刻录光盘",
    "光盘核验通过",
];

impl ActFigures {
    /// The row's cells, as text, in the order of the column titles (without 已归档).
    pub fn cells(&self) -> Vec<String> {
        let reasons: Vec<String> = self
            .late_reasons
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        vec![
            self.act_type.clone(),
            self.cases.to_string(),
            self.cases_with_av.to_string(),
            self.clips.to_string(),
            format!("{:.2}", self.hours),
            self.clips_without_duration.to_string(),
            self.on_time.to_string(),
            self.late.to_string(),
            reasons.join("；"),
            share(self.bound, self.clips),
            share(self.annotated, self.clips),
            self.discs_built.to_string(),
            self.discs_checked.to_string(),
        ]
    }
}

/// `n (p%)` of a total.
fn share(n: usize, of: usize) -> String {
    if of == 0 {
        return n.to_string();
    }
    #[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
    let p = n as f64 * 100.0 / of as f64;
    format!("{n} ({p:.1}%)")
}

impl Statistics {
    /// The column titles of the readable table.
    pub fn columns() -> &'static [&'static str] {
        &COLUMNS
    }

    fn rows_and_total(&self) -> impl Iterator<Item = &ActFigures> {
        self.rows.iter().chain(std::iter::once(&self.total))
    }

    /// CSV (UTF-8 with a byte-order mark, so spreadsheets read the Chinese), one line per
    /// act type and the total, then the checkpoint.
    pub fn to_csv(&self) -> String {
        let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        let mut out = String::from('\u{feff}');
        let _ = writeln!(out, "{},已归档案件", COLUMNS.map(quote).join(","));
        for row in self.rows_and_total() {
            let cells: Vec<String> = row.cells().iter().map(|c| quote(c)).collect();
            let _ = writeln!(out, "{},{}", cells.join(","), row.cases_archived);
        }
        let _ = writeln!(
            out,
            "\"检查点\",\"{} {} {}\"",
            self.origin, self.checkpoint_size, self.checkpoint_root
        );
        out
    }

    /// The Chinese HTML page.
    pub fn to_html(&self) -> String {
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                head {
                    meta charset="utf-8";
                    title { (self.year) " 年度执法音像记录统计" }
                    style {
                        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                        "td,th{border:1px solid #999;padding:4px 8px}th{background:#eee;white-space:nowrap}"
                        "td.n{text-align:right;white-space:nowrap}"
                    }
                }
                body {
                    h1 { (self.agency) " " (self.year) " 年度行政执法统计年报（音像记录部分）" }
                    p {
                        "统计范围：" (self.year) " 年 1 月 1 日至 12 月 31 日录制的视音频资料，及当年结束的案件。"
                        "次年 1 月 31 日前报送。"
                    }
                    table {
                        tr {
                            @for c in COLUMNS { th { (c) } }
                            th { "已归档案件" }
                        }
                        @for row in self.rows_and_total() {
                            tr {
                                @for (i, c) in row.cells().iter().enumerate() {
                                    td class=[(i != 0 && i != 8).then_some("n")] { (c) }
                                }
                                td.n { (row.cases_archived) }
                            }
                        }
                    }
                    p {
                        "全部数字于采集站透明日志检查点计算：" (self.origin) "，大小 " (self.checkpoint_size)
                        "，根哈希 " (self.checkpoint_root) "（" (self.computed_at) "）。持有该日志者可据此重新计算并核对。"
                    }
                }
            }
        }
        .into_string()
    }
}
