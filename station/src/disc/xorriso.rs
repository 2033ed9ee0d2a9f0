//! Running xorriso: building an image, checking its MD5 tags, extracting it. Its exit code
//! alone is never trusted (a mismatching session tag is a warning that exits 0):
//! `-return_with WARNING 32` turns warnings into failures, and `-check_md5_r FAILURE`
//! names the damaged file.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

/// Builds `image` (replaced if it exists) with volume id `volume_id` from `maps`: pairs of
/// (file or folder on this machine, path on the disc).
pub fn build(image: &Path, volume_id: &str, maps: &[(&Path, String)]) -> anyhow::Result<()> {
    if image.exists() {
        std::fs::remove_file(image).with_context(|| format!("removing {}", image.display()))?;
    }
    let mut cmd = Command::new("xorriso");
    cmd.args(["-report_about", "WARNING", "-return_with", "WARNING", "32"])
        .args(["-compliance", "iso_9660_level=3:joliet_long_names"])
        .args(["-joliet", "on", "-rockridge", "on", "-md5", "on"])
        .args(["-volid", volume_id])
        .arg("-outdev")
        .arg(format!("stdio:{}", image.display()));
    for (source, on_disc) in maps {
        cmd.arg("-map").arg(source).arg(on_disc);
    }
    cmd.arg("-commit");
    run(&mut cmd, "building the image")
}

/// Checks every file's MD5 tag on `source` (an image, a drive, an emulated `stdio:`
/// drive); returns the paths xorriso names as damaged.
pub fn check_md5(source: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("xorriso")
        .args([
            "-md5",
            "on",
            "-indev",
            source,
            "-check_md5_r",
            "FAILURE",
            "/",
            "--",
        ])
        .output()
        .context("running xorriso (is it installed? scripts/setup installs it)")?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // "MD5 MISMATCH: '/clips/…'" per damaged file.
    let damaged: Vec<String> = text
        .lines()
        .filter(|l| l.contains("MISMATCH"))
        .filter_map(|l| l.split('\'').nth(1).map(str::to_owned))
        .collect();
    if !out.status.success() && damaged.is_empty() {
        bail!("xorriso cannot check {source}: {}", last_lines(&text));
    }
    Ok(damaged)
}

/// Extracts the whole of `source` into `dir` (user space: no mount needed).
pub fn extract(source: &str, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new("xorriso");
    cmd.args([
        "-report_about",
        "WARNING",
        "-osirrox",
        "on",
        "-indev",
        source,
    ])
    .args(["-extract", "/"])
    .arg(dir);
    run(&mut cmd, "extracting the disc")
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .context("running xorriso (is it installed? scripts/setup installs it)")?;
    if !out.status.success() {
        bail!(
            "xorriso failed {what} (exit {:?}): {}",
            out.status.code(),
            last_lines(&String::from_utf8_lossy(&out.stderr))
        );
    }
    Ok(())
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// Writes `image` to `drive` in one session (`xorriso -as cdrecord -dao`). A drive is a
/// device (`/dev/sr0`) or an emulated one (`stdio:/path`), which gets the image and then
/// cdrecord's 320 KiB of zero padding.
pub fn burn(image: &Path, drive: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new("xorriso");
    cmd.args(["-as", "cdrecord", "-v"])
        .arg(format!("dev={drive}"))
        .arg("-dao")
        .arg(image);
    run(&mut cmd, "burning the disc")
}
