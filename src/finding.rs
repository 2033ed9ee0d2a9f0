//! Findings: evidence that fails a check. Not errors: checking goes on, and every finding
//! carries a stable code that reports print and tests match.

use serde::Serialize;

/// Stable finding codes: printed in reports, matched by tests, never reworded.
pub mod code {
    /// Record bytes could not be parsed (size, JSON, schema, unknown version).
    pub const RECORD_MALFORMED: &str = "record.malformed";
    /// A record without its `.sig` file.
    pub const SIGNATURE_MISSING: &str = "record.signature.missing";
    /// The signature does not verify over the record's bytes.
    pub const SIGNATURE_INVALID: &str = "record.signature.invalid";
    /// A record naming another device than the one it was found under.
    pub const RECORD_FOREIGN_DEVICE: &str = "record.device.foreign";
    /// A record signed by (naming) a key that is not the device's enrolled key.
    pub const RECORD_UNKNOWN_KEY: &str = "record.key.unknown";
    /// A record made (or a clip ending) later than the verifier's clock allows: the
    /// device clock ran ahead, or the record was made up.
    pub const RECORD_FROM_FUTURE: &str = "record.time.future";
    /// A later record points at a clip record that is not in the chain.
    pub const SUBJECT_UNKNOWN: &str = "record.subject.unknown";
    /// Sequence numbers are missing: a record was deleted.
    pub const CHAIN_GAP: &str = "chain.gap";
    /// A record's `prev` is the hash of a record with another place in the sequence.
    pub const CHAIN_REORDERED: &str = "chain.reordered";
    /// Two different, validly signed records with one sequence number.
    pub const CHAIN_FORK: &str = "chain.fork";
    /// A record's `prev` matches no record: the one before it was replaced.
    pub const CHAIN_PREV_MISMATCH: &str = "chain.prev.mismatch";
    /// The device folder holds no public key.
    pub const DEVICE_KEY_MISSING: &str = "device.key.missing";
    /// The device's public key is not among the keys the verifier was told to trust.
    pub const DEVICE_KEY_UNTRUSTED: &str = "device.key.untrusted";
    /// The media's SHA-256 (or size) differs from the signed record.
    pub const MEDIA_HASH_MISMATCH: &str = "media.hash.mismatch";
    /// The media file a record covers is not there.
    pub const MEDIA_MISSING: &str = "media.missing";
    /// A file that no record covers.
    pub const MEDIA_UNRECORDED: &str = "media.unrecorded";
    /// A docked device the station has no enrolment for: quarantined, never mixed with
    /// evidence.
    pub const DEVICE_UNENROLLED: &str = "device.unenrolled";
    /// A clip stored after its deadline (当日 / 返回后 24 小时).
    pub const STORED_LATE: &str = "deadline.late";
    /// An audit found a stored object missing from the store (or its replica).
    pub const STORE_OBJECT_MISSING: &str = "store.object.missing";
    /// An audit read a stored object back and its bytes no longer hash to its name.
    pub const STORE_OBJECT_CORRUPT: &str = "store.object.corrupt";
    /// A stored object (or a device's file) that cannot be read at all: an I/O error.
    pub const STORE_OBJECT_UNREADABLE: &str = "store.object.unreadable";
    /// A record or media file that exists but cannot be read (permissions, I/O error).
    pub const FILE_UNREADABLE: &str = "file.unreadable";
    /// An audit found a leaf of the station's log without its ledger row, a ledger row
    /// without its leaf, or a row whose bytes are not the leaf's: the ledger was changed
    /// behind the station.
    pub const LOG_LEAF_UNMATCHED: &str = "log.leaf.unmatched";

    /// Why an agent refused a receipt (nothing it covers is freed).
    /// Larger than any receipt.
    pub const RECEIPT_TOO_LARGE: &str = "receipt.too-large";
    /// Cut short or not a receipt of a known format (a pulled cable, another version).
    pub const RECEIPT_MALFORMED: &str = "receipt.malformed";
    /// The signature does not verify with the enrolled station key.
    pub const RECEIPT_SIGNATURE_INVALID: &str = "receipt.signature.invalid";
    /// Addressed to another device or device key.
    pub const RECEIPT_FOREIGN: &str = "receipt.addressee.foreign";
    /// Its checkpoint is not a note signed by the station.
    pub const RECEIPT_CHECKPOINT_INVALID: &str = "receipt.checkpoint.invalid";
    /// An inclusion proof does not lead to the checkpoint's root.
    pub const RECEIPT_PROOF_INVALID: &str = "receipt.proof.invalid";
    /// It names, at a seq, a record other than the one the device holds.
    pub const RECEIPT_OTHER_RECORD: &str = "receipt.record.other";
    /// It names a seq the device never sealed.
    pub const RECEIPT_SEQ_UNKNOWN: &str = "receipt.seq.unknown";
    /// It does not list a seq it was asked about.
    pub const RECEIPT_SEQ_NOT_COVERED: &str = "receipt.seq.uncovered";
    /// Verified, but it covers only clips freed before: a replay (not refused, frees
    /// nothing).
    pub const RECEIPT_REPLAYED: &str = "receipt.replayed";
}

/// What a finding code means, in Chinese, for clerks (reports and readable tables);
/// `None` for a code this build does not know (e.g. one written by a newer station).
pub fn describe_zh(finding_code: &str) -> Option<&'static str> {
    Some(match finding_code {
        code::RECORD_MALFORMED => "签封记录格式错误，无法解析",
        code::SIGNATURE_MISSING => "签封记录缺少签名文件",
        code::SIGNATURE_INVALID => "签封记录的签名无效（内容被改动或非本设备签名）",
        code::RECORD_FOREIGN_DEVICE => "记录属于其他设备",
        code::RECORD_UNKNOWN_KEY => "记录由未登记的密钥签名",
        code::RECORD_FROM_FUTURE => "记录时间晚于核验时钟（设备时钟超前或记录不实）",
        code::SUBJECT_UNKNOWN => "补充记录指向的视频不在哈希链中",
        code::CHAIN_GAP => "哈希链缺号：有记录被删除",
        code::CHAIN_REORDERED => "哈希链顺序被调换",
        code::CHAIN_FORK => "同一序号有两条不同的签封记录（分叉）",
        code::CHAIN_PREV_MISMATCH => "哈希链断开：前一条记录被替换",
        code::DEVICE_KEY_MISSING => "设备目录中没有公钥",
        code::DEVICE_KEY_UNTRUSTED => "设备公钥不在受信任的密钥之列",
        code::MEDIA_HASH_MISMATCH => "视音频文件与签封记录的哈希不一致（已保留并标记）",
        code::MEDIA_MISSING => "签封记录对应的视音频文件缺失",
        code::MEDIA_UNRECORDED => "文件没有签封记录（站端计算哈希后保存）",
        code::DEVICE_UNENROLLED => "设备未登记或身份不符，已隔离",
        code::STORED_LATE => "超过存储时限才存储",
        code::STORE_OBJECT_MISSING => "存储中找不到该对象",
        code::STORE_OBJECT_CORRUPT => "存储对象读回后哈希不符（被改动或损坏）",
        code::STORE_OBJECT_UNREADABLE => "存储对象无法读取（读写错误）",
        code::FILE_UNREADABLE => "文件存在但无法读取（权限或读写错误）",
        code::LOG_LEAF_UNMATCHED => "透明日志与台账不一致（台账被绕过采集站改动）",
        code::RECEIPT_TOO_LARGE => "回执超出大小上限",
        code::RECEIPT_MALFORMED => "回执格式错误或不完整",
        code::RECEIPT_SIGNATURE_INVALID => "回执签名与登记的采集站密钥不符",
        code::RECEIPT_FOREIGN => "回执发给其他设备",
        code::RECEIPT_CHECKPOINT_INVALID => "回执中的检查点无效",
        code::RECEIPT_PROOF_INVALID => "回执中的包含证明不能导出检查点",
        code::RECEIPT_OTHER_RECORD => "回执所列记录与本设备持有的不同",
        code::RECEIPT_SEQ_UNKNOWN => "回执列出了本设备从未签封的序号",
        code::RECEIPT_SEQ_NOT_COVERED => "回执未包含所问的序号",
        code::RECEIPT_REPLAYED => "回执重复（所涉文件此前已释放）",
        _ => return None,
    })
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Evidence integrity is in doubt.
    Error,
    /// Needs a look, integrity of signed evidence is not in doubt (e.g. an unrecorded file).
    Warning,
}

/// One problem found in evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub level: Level,
    /// A stable code from [`code`].
    pub code: &'static str,
    /// What it is about: a device, `seq 3`, a file path.
    pub subject: String,
    /// Human explanation with the values involved.
    pub detail: String,
}

impl Finding {
    /// An error-level finding.
    pub fn error(
        code: &'static str,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Error,
            code,
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    /// A warning-level finding.
    pub fn warning(
        code: &'static str,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            level: Level::Warning,
            ..Self::error(code, subject, detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_chinese_description() {
        let text = include_str!("finding.rs");
        let codes: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert!(codes.len() > 20, "{codes:?}");
        for c in codes {
            let zh = describe_zh(c).unwrap_or_else(|| panic!("{c} has no Chinese description"));
            assert!(
                zh.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
                "{c}: {zh}"
            );
        }
        assert_eq!(describe_zh("no.such.code"), None);
    }
}
