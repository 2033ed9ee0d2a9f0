//! The report as a self-contained HTML page, in Chinese, for clerks (maud: typed, escaped
//! HTML).

use chrono::{DateTime, FixedOffset, Utc};
use maud::{DOCTYPE, Markup, html};

use super::{ClipRow, ClipStatus, Report, ReportQuery};

impl Report {
    /// The report as a self-contained HTML page (Chinese, for clerks).
    pub fn to_html(&self) -> String {
        let t = &self.totals;
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                head {
                    meta charset="utf-8";
                    title { "证据完整性报告 · " (self.station) }
                    style { (maud::PreEscaped(CSS)) }
                }
                body {
                    h1 { "执法音视频证据完整性报告" }
                    p {
                        "采集站：" (self.station) br;
                        "范围：" (self.scope) br;
                        "生成时间：" (self.generated_at) br;
                        "透明日志检查点："
                        @match &self.checkpoint {
                            Some((size, root)) => { "共 " (size) " 条记录，根哈希 " code { (root) } }
                            None => { "（尚无）" }
                        }
                    }
                    @if self.is_clean() {
                        p.ok { "结论：全部视音频文件签封有效、哈希一致，未发现问题。" }
                    } @else {
                        p.bad { "结论：发现问题，详见下方“发现的问题”。所有文件均已保留，未删除任何内容。" }
                    }
                    h2 { "汇总" }
                    table.totals {
                        tr { th { "有签封记录的文件" } td { (t.clips) } }
                        tr { th { "存储字节数" } td { (t.bytes) } }
                        tr { th { "校验通过" } td { (t.verified) } }
                        tr { th { "哈希不一致（已保留并标记）" } td { (t.mismatched) } }
                        tr { th { "设备上缺失" } td { (t.missing) } }
                        tr { th { "无签封记录（站端计算哈希后保存）" } td { (t.unattested) "（" (t.unattested_bytes) " 字节）" } }
                        tr { th { "超期存储" } td { (t.late) } }
                        tr { th { "隔离的设备" } td { (t.quarantined) } }
                        tr { th { "发现的问题" } td { (t.findings) } }
                    }
                    h2 { "视音频文件" }
                    table {
                        tr {
                            th { "设备" } th { "序号" } th { "编号" } th { "案件编号" } th { "证明对象" }
                            th { "对话人员" } th { "主要内容" } th { "文件" } th { "执法人员" } th { "大小" }
                            th { "SHA-256" } th { "状态" } th { "录制结束" } th { "存储时限" } th { "存储时间" }
                            th { "是否超期" }
                        }
                        @for c in &self.clips { (clip_row(c)) }
                    }
                    (self.unattested_section())
                    (self.findings_section())
                    (self.quarantine_section())
                    p.note {
                        "说明：每个文件的 SHA-256 与设备签封记录中的值比对；记录的签名、设备哈希链与透明日志可用 "
                        code { "custody verify" } " 或 openssl、sha256sum 独立核验。"
                    }
                }
            }
        }
        .into_string()
    }

    fn unattested_section(&self) -> Markup {
        html! {
            @if !self.unattested.is_empty() {
                h2 { "无签封记录的文件" }
                table {
                    tr { th { "设备" } th { "文件" } th { "大小" } th { "SHA-256（站端计算）" } th { "存储时间" } }
                    @for u in &self.unattested {
                        tr { td { (u.serial) } td { (u.file) } td { (u.size) } td { code { (u.sha256) } } td { (u.stored_at) } }
                    }
                }
            }
        }
    }

    fn findings_section(&self) -> Markup {
        html! {
            h2 { "发现的问题" }
            @if self.findings.is_empty() {
                p { "无。" }
            } @else {
                table {
                    tr { th { "级别" } th { "问题" } th { "设备" } th { "对象" } th { "详情" } th { "时间" } }
                    @for f in &self.findings {
                        tr class=(f.level) {
                            td { @if f.level == "error" { "错误" } @else { "警告" } }
                            td.text { (f.title) br; code { (f.code) } }
                            td { (f.serial.as_deref().unwrap_or("—")) }
                            td { (f.subject) }
                            td { (f.detail) }
                            td { (f.at) }
                        }
                    }
                }
            }
        }
    }

    fn quarantine_section(&self) -> Markup {
        html! {
            @if !self.quarantine.is_empty() {
                h2 { "隔离的设备（未登记或身份不符，文件单独保存，未混入证据）" }
                table {
                    tr { th { "声称的设备" } th { "保存位置" } th { "文件数" } th { "字节数" } th { "时间" } }
                    @for q in &self.quarantine {
                        tr {
                            td { (q.claimed.as_deref().unwrap_or("未知")) } td { (q.folder) }
                            td { (q.files) } td { (q.bytes) } td { (q.at) }
                        }
                    }
                }
            }
        }
    }
}

/// One clip's row.
fn clip_row(c: &ClipRow) -> Markup {
    html! {
        tr {
            td { (c.serial) }
            td { (c.seq) }
            td {
                (c.number)
                @if c.number != c.sealed_number { br; small { "原编号 " (c.sealed_number) } }
            }
            td { (c.case_number.as_deref().unwrap_or("—")) }
            td.text { (c.proves.as_deref().unwrap_or("—")) }
            td.text {
                @if c.speakers.is_empty() { "—" }
                @for (i, p) in c.speakers.iter().enumerate() {
                    @if i > 0 { "、" }
                    (p.name) "（" (p.identity) "）"
                }
            }
            td.text { (c.summary.as_deref().unwrap_or("—")) }
            td.path { (c.file) }
            td { (c.officer_zh()) }
            td { (c.size) }
            td { code { (c.signed_sha256) } }
            td {
                @match c.status {
                    ClipStatus::Verified => span.ok { "校验通过" },
                    ClipStatus::Mismatch => span.bad { "哈希不一致" },
                    ClipStatus::Missing => span.bad { "缺失" },
                }
            }
            td { (c.recorded_end) }
            td { (c.deadline) }
            td { (c.stored_at) }
            td {
                @if c.late {
                    span.bad { "超期" }
                    @if let Some(r) = &c.delay_reason { "（延迟理由：" (r) "）" }
                } @else { "按时" }
            }
        }
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
