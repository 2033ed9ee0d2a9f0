//! Running xorriso: building an image, checking its MD5 tags, extracting it. Its exit code
//! alone is never trusted (a mismatching session tag is a warning that exits 0):
//! `-return_with WARNING 32` turns warnings into failures, and `-check_md5_r FAILURE`
//! names the damaged file.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::progress::SlotProgress;

/// How often a running xorriso's reading is looked at.
const POLL: Duration = Duration::from_millis(200);

/// Where a running xorriso's progress goes: the bytes it has read, on top of `base`.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    /// The counters to move.
    pub progress: &'a SlotProgress,
    /// Bytes done before this run.
    pub base: u64,
}

/// Builds `image` (replaced if it exists) with volume id `volume_id` from `maps`: pairs of
/// (file or folder on this machine, path on the disc). The image is written beside it
/// under a `.partial` name and renamed when xorriso has finished, so a failed build
/// never leaves a half image under the real name.
pub fn build(
    image: &Path,
    volume_id: &str,
    maps: &[(&Path, String)],
    watch: Option<Watch<'_>>,
) -> anyhow::Result<()> {
    let mut partial = image.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_file(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    let mut cmd = Command::new("xorriso");
    cmd.args(["-report_about", "WARNING", "-return_with", "WARNING", "32"])
        .args(["-compliance", "iso_9660_level=3:joliet_long_names"])
        .args(["-joliet", "on", "-rockridge", "on", "-md5", "on"])
        .args(["-volid", volume_id])
        .arg("-outdev")
        .arg(format!("stdio:{}", partial.display()));
    for (source, on_disc) in maps {
        cmd.arg("-map").arg(source).arg(on_disc);
    }
    cmd.arg("-commit");
    if let Err(e) = run(&mut cmd, "building the image", watch) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, image).with_context(|| format!("naming {}", image.display()))?;
    if let Some(dir) = image.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Checks every file's MD5 tag on `source` (an image, a drive, an emulated `stdio:`
/// drive); returns the paths xorriso names as damaged.
pub fn check_md5(source: &str, watch: Option<Watch<'_>>) -> anyhow::Result<Vec<String>> {
    let (status, stdout, stderr) = watched(
        Command::new("xorriso").args([
            "-md5",
            "on",
            "-indev",
            source,
            "-check_md5_r",
            "FAILURE",
            "/",
            "--",
        ]),
        watch,
    )?;
    let text = stderr + &stdout;
    // "MD5 MISMATCH: '/clips/…'" per damaged file.
    let damaged: Vec<String> = text
        .lines()
        .filter(|l| l.contains("MISMATCH"))
        .filter_map(|l| l.split('\'').nth(1).map(str::to_owned))
        .collect();
    if !status.success() && damaged.is_empty() {
        bail!("xorriso cannot check {source}: {}", last_lines(&text));
    }
    Ok(damaged)
}

/// Extracts the whole of `source` into `dir` (user space: no mount needed).
pub fn extract(source: &str, dir: &Path, watch: Option<Watch<'_>>) -> anyhow::Result<()> {
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
    run(&mut cmd, "extracting the disc", watch)
}

fn run(cmd: &mut Command, what: &str, watch: Option<Watch<'_>>) -> anyhow::Result<()> {
    let (status, _, stderr) = watched(cmd, watch)?;
    if !status.success() {
        bail!(
            "xorriso failed {what} (exit {:?}): {}",
            status.code(),
            last_lines(&stderr)
        );
    }
    Ok(())
}

/// Runs `cmd` to its end, its output read as it comes, and with `watch` the bytes it
/// has read so far (`/proc/PID/io`) counted on the way.
fn watched(
    cmd: &mut Command,
    watch: Option<Watch<'_>>,
) -> anyhow::Result<(ExitStatus, String, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running xorriso (is it installed? scripts/setup installs it)")?;
    let drain = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let (Some(w), Some(read)) = (watch, bytes_read(child.id())) {
            let done = (w.base + read).min(w.progress.bytes_total);
            w.progress.bytes_done.fetch_max(done, Ordering::Relaxed);
        }
        std::thread::sleep(POLL);
    };
    let text = |t: std::thread::JoinHandle<String>| t.join().unwrap_or_default();
    Ok((status, text(stdout), text(stderr)))
}

/// Bytes process `pid` has read so far (`rchar` of `/proc/PID/io`).
fn bytes_read(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("rchar:"))?
        .trim()
        .parse()
        .ok()
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// Writes `image` to `drive` in one session (`xorriso -as cdrecord -dao`). A drive is a
/// device (`/dev/sr0`) or an emulated one (`stdio:/path`), which gets the image and then
/// cdrecord's 320 KiB of zero padding.
pub fn burn(image: &Path, drive: &str, watch: Option<Watch<'_>>) -> anyhow::Result<()> {
    let mut cmd = Command::new("xorriso");
    cmd.args(["-as", "cdrecord", "-v"])
        .arg(format!("dev={drive}"))
        .arg("-dao")
        .arg(image);
    run(&mut cmd, "burning the disc", watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_leaves_the_old_image_and_no_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("V1.iso");
        std::fs::write(&image, b"the image built before").unwrap();
        let gone = dir.path().join("not-there.mp4");
        let err = build(
            &image,
            "V1",
            &[(gone.as_path(), "/clips/a.mp4".into())],
            None,
        );
        assert!(err.is_err());
        assert_eq!(std::fs::read(&image).unwrap(), b"the image built before");
        assert!(!dir.path().join("V1.iso.partial").exists());
        let clip = dir.path().join("a.mp4");
        std::fs::write(&clip, b"clip bytes").unwrap();
        build(
            &image,
            "V1",
            &[(clip.as_path(), "/clips/a.mp4".into())],
            None,
        )
        .unwrap();
        let built = std::fs::read(&image).unwrap();
        assert_eq!(&built[32769..32774], b"CD001");
        assert!(!dir.path().join("V1.iso.partial").exists());
    }
}
