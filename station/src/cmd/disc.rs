//! `custody-station disc build CASE-NO --media …`: the case's archive disc images;
//! `disc verify IMAGE|DRIVE|FOLDER`: read a disc back and check everything on it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use custody_station::Medium;

/// `disc` actions.
#[derive(Subcommand)]
pub enum Action {
    /// Build the case's disc set (ISO 9660 level 3 + Joliet + Rock Ridge, MD5 tags), split
    /// over as many discs as its size needs, each self-contained.
    Build {
        /// The case's document number.
        case: String,
        /// The medium the images are for.
        #[arg(long, value_enum)]
        media: Medium,
        /// Capacity in bytes, for a medium of another size than the nominal one.
        #[arg(long)]
        capacity: Option<u64>,
        /// Where the images go.
        #[arg(long, default_value = "discs")]
        out: PathBuf,
    },
    /// Check a disc image, a drive (e.g. stdio:/path or /dev/sr0) or a folder copied from
    /// a disc: MD5 tags, SHA256SUMS, signatures, proofs, and the ledger. Exit 1 if damaged.
    Verify {
        /// The image, drive or folder.
        source: String,
    },
}

/// Runs the action.
pub fn run(config: &Path, action: &Action, json: bool) -> anyhow::Result<ExitCode> {
    match action {
        Action::Build {
            case,
            media,
            capacity,
            out,
        } => {
            let station = super::open(config)?;
            let discs = station.build_discs(case, *media, *capacity, out)?;
            if json {
                custody::outln!("{}", serde_json::to_string_pretty(&discs)?)?;
            } else {
                for d in &discs {
                    custody::outln!(
                        "光盘 {}/{}  卷标 {}  视音频 {} 个  文书 {} 份  {}  {}",
                        d.disc,
                        d.of,
                        d.volume_id,
                        d.clips,
                        d.documents,
                        super::human_bytes(d.image_size),
                        d.image.display()
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Verify { source } => {
            let station = super::open(config)?;
            let check = station.verify_disc(source)?;
            if json {
                custody::outln!("{}", serde_json::to_string_pretty(&check)?)?;
            } else if check.is_intact() {
                custody::outln!(
                    "光盘 {} 核验通过：{} 个文件，签名、包含证明与台账一致",
                    check.volume_id.as_deref().unwrap_or("?"),
                    check.files
                )?;
            } else {
                custody::outln!(
                    "光盘 {} 核验失败（{} 处问题）：",
                    check.volume_id.as_deref().unwrap_or("?"),
                    check.problems.len()
                )?;
                for p in &check.problems {
                    custody::outln!("  {}: {}", p.file, p.why)?;
                }
            }
            Ok(if check.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
