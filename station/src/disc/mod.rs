//! Archive discs (光盘): a case file becomes one or more ISO images (ISO 9660 level 3 +
//! Joliet long names + Rock Ridge, MD5 tags, built by xorriso), split by the medium's
//! capacity, each self-contained for what it holds: its clips and documents, their
//! signed records, the device and station keys, inclusion proofs to one checkpoint and
//! that checkpoint, `SHA256SUMS`, a Chinese index page and a README (说明) telling a court
//! how to verify everything with `sha256sum` and `openssl` alone.
//!
//! The same builder makes export packages ([`package`]). A disc is a copy: the store
//! and the ledger stay primary. Facts and traps:
//! shared/reference/discs.md.

mod build;
mod burn;
mod package;
mod readme;
mod verify;
mod xorriso;

use custody::MediaHash;
use serde::Serialize;

pub use build::{BuiltDisc, README_FILE};
pub use burn::{Burned, CHECK_EVERY_YEARS, CHECK_SAMPLE_PERCENT, DiscDue};
pub use readme::{SCRIPT_BEGIN, SCRIPT_END};

use crate::report::ClipRow;

/// Archive media and their nominal capacities in bytes (shared/reference/discs.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Medium {
    /// CD-R, 700 MB.
    Cd,
    /// DVD±R, 4.7 GB.
    Dvd,
    /// DVD±R DL, 8.5 GB.
    DvdDl,
    /// BD-R, 25 GB.
    Bd25,
    /// BD-R DL, 50 GB.
    Bd50,
    /// BDXL, 100 GB.
    Bd100,
}

impl Medium {
    /// Nominal capacity in bytes.
    pub fn capacity(self) -> u64 {
        match self {
            Self::Cd => 700 * 1024 * 1024,
            Self::Dvd => 4_700_372_992,
            Self::DvdDl => 8_543_666_176,
            Self::Bd25 => 25_025_314_816,
            Self::Bd50 => 50_050_629_632,
            Self::Bd100 => 100_103_356_416,
        }
    }

    /// The name as the CLI and the ledger spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cd => "cd",
            Self::Dvd => "dvd",
            Self::DvdDl => "dvd-dl",
            Self::Bd25 => "bd25",
            Self::Bd50 => "bd50",
            Self::Bd100 => "bd100",
        }
    }
}

/// A clip as one disc ships it.
#[derive(Debug, Clone)]
pub struct ShippedClip {
    /// The clip as the case view shows it.
    pub row: ClipRow,
    /// Its object in the store.
    pub sha256: MediaHash,
    /// Its path on the disc (`clips/<number>.<ext>`).
    pub disc_path: String,
}

/// A document as one disc ships it.
#[derive(Debug, Clone)]
pub struct ShippedDocument {
    /// Title.
    pub title: String,
    /// Who attached it.
    pub attached_by: String,
    /// Its object in the store.
    pub sha256: MediaHash,
    /// Its size.
    pub size: u64,
    /// Its path on the disc (`documents/<name>`).
    pub disc_path: String,
    /// The seq of the station record describing it.
    pub station_seq: u64,
}

/// What one disc of a set holds.
#[derive(Debug, Clone)]
pub struct DiscPlan {
    /// The case's canonical number.
    pub case_number: String,
    /// The case's disc set, from 1.
    pub set: u64,
    /// Disc number, from 1.
    pub disc: usize,
    /// Discs in the set.
    pub of: usize,
    /// The ASCII volume id.
    pub volume_id: String,
    /// Its clips.
    pub clips: Vec<ShippedClip>,
    /// Its documents.
    pub documents: Vec<ShippedDocument>,
    /// What the export is, when this is an export package rather than an archive disc.
    pub package: Option<PackagePlan>,
}

impl DiscPlan {
    /// What people call it: 光盘 or 导出包.
    pub fn noun(&self) -> &'static str {
        if self.package.is_some() {
            "导出包"
        } else {
            "光盘"
        }
    }
}

/// An export package's request and approvals, as its README and `disc.json` state them.
#[derive(Debug, Clone, Serialize)]
pub struct PackagePlan {
    /// The request's id.
    pub request: u64,
    /// Its form.
    pub form: custody::ExportForm,
    /// 事由.
    pub purpose: String,
    /// Where it goes.
    pub destination: String,
    /// Whether it leaves the agency.
    pub outside: bool,
    /// Who asked (name and department).
    pub requester: String,
    /// Who approved (name, department and role), in order.
    pub approvers: Vec<String>,
}

/// The ASCII volume id of disc `n` of a case's disc set number `set`: `AJ` + year +
/// serial + `S` set + `D` n, at most 16 characters of `[A-Z0-9]` (the Chinese number is in
/// the README and the ledger).
pub fn volume_id(case: &custody::DocumentNumber, set: u64, n: usize) -> String {
    let id = format!("AJ{}{:04}S{set}D{n:02}", case.year, case.serial);
    id.chars().take(16).collect()
}

/// A file name safe on every view of a disc: no folders, no whitespace (the README's
/// script reads names separated by spaces), no control characters.
pub fn disc_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids_are_short_ascii_and_names_have_no_separators() {
        let scheme = custody::NumberingScheme::from_toml(include_str!(
            "../../../config/numbering.example.toml"
        ))
        .unwrap();
        let case = scheme.parse_document("襄环罚〔2019〕75号").unwrap();
        let id = volume_id(&case, 2, 3);
        assert_eq!(id, "AJ20190075S2D03");
        assert!(
            id.len() <= 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        assert_eq!(disc_name("现场 照片/1.png"), "现场_照片_1.png");
    }
}
