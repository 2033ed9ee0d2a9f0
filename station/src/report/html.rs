//! The report as a self-contained HTML page, in Chinese, for clerks.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, Utc};

use super::{ClipStatus, Report, ReportQuery};

impl Report {
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
             <th>证明对象</th><th>对话人员</th><th>主要内容</th>\
             <th>文件</th><th>执法人员</th><th>大小</th><th>SHA-256</th><th>状态</th>\
             <th>录制结束</th><th>存储时限</th><th>存储时间</th><th>是否超期</th></tr>\n",
        );
        for c in &self.clips {
            let status = match c.status {
                ClipStatus::Verified => "<span class=\"ok\">校验通过</span>",
                ClipStatus::Mismatch => "<span class=\"bad\">哈希不一致</span>",
                ClipStatus::Missing => "<span class=\"bad\">缺失</span>",
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
            let number = if c.number == c.sealed_number {
                esc(&c.number)
            } else {
                format!(
                    "{}<br><small>原编号 {}</small>",
                    esc(&c.number),
                    esc(&c.sealed_number)
                )
            };
            let speakers = c
                .speakers
                .iter()
                .map(|p| format!("{}（{}）", esc(&p.name), esc(&p.identity)))
                .collect::<Vec<_>>()
                .join("、");
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{number}</td><td>{}</td><td class=\"text\">{}</td>\
                 <td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"path\">{}</td><td>{}</td>\
                 <td>{}</td><td><code>{}</code></td><td>{status}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{late}</td></tr>",
                esc(&c.serial),
                c.seq,
                esc(c.case_number.as_deref().unwrap_or("—")),
                esc(c.proves.as_deref().unwrap_or("—")),
                if speakers.is_empty() {
                    "—".to_owned()
                } else {
                    speakers
                },
                esc(c.summary.as_deref().unwrap_or("—")),
                esc(&c.file),
                esc(&c.officer_zh()),
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
                "<table><tr><th>级别</th><th>问题</th><th>设备</th><th>对象</th><th>详情</th>\
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
                    "<tr class=\"{}\"><td>{level}</td><td class=\"text\">{}<br><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.level),
                    esc(&f.title),
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
font-size:.9em;text-align:left}th{white-space:nowrap}td.text{min-width:8em}\
td.path{word-break:break-all;min-width:10em}code{font-size:.8em;word-break:break-all}.ok{color:#060}\
.bad,.error{color:#b00}.warning{color:#a60}.note{color:#555;font-size:.85em}";

pub(super) fn scope_text(q: &ReportQuery, offset: FixedOffset) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &q.device {
        parts.push(format!("设备 {d}"));
    }
    if let Some(c) = &q.case {
        parts.push(format!("案件 {c}"));
    }
    if let Some(o) = &q.officer {
        parts.push(format!("执法证号 {o}"));
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
pub(crate) fn esc(s: &str) -> String {
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
