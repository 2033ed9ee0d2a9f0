//! `custody verify` as a clerk runs it: exit 0 when all is verified, 1 with findings,
//! 2 when it cannot run; JSON for machines carries the stable codes.

use std::collections::BTreeSet;
use std::fs;

use custody::testkit::{RECIPES, SampleDevice};

use crate::util::{arg, custody_verify, run_ok, sample_time};

fn json_codes(stdout: &[u8]) -> BTreeSet<String> {
    let report: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// A device recorded with two real MP4 clips made by FFmpeg.
fn recorded_device(dir: &std::path::Path) -> SampleDevice {
    let mut clips = Vec::new();
    for i in 1..=3 {
        let clip = dir.join(format!("src{i}.mp4"));
        let tone = format!("sine=frequency={}:duration=1", 300 + 100 * i);
        run_ok(
            "ffmpeg",
            &[
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=320x240:rate=25",
                "-f",
                "lavfi",
                "-i",
                &tone,
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                "-metadata",
                "creation_time=2026-11-20T01:00:00Z",
                arg(&clip),
            ],
        );
        clips.push(clip);
    }
    SampleDevice::create(&dir.join("device"), "A100001", &clips).unwrap()
}

#[test]
fn a_clean_device_of_real_mp4_clips_exits_0_with_a_readable_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let dev = recorded_device(dir.path());
    let out = custody_verify(&[arg(&dev.root)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.trim_end()
            .ends_with("结论: 全部核验通过 (all verified)"),
        "{text}"
    );
    assert!(text.contains("核验通过视频 3 个"), "{text}");
    let key = dev.root.join("custody/devices/A100001/device.pub.pem");
    assert_eq!(
        custody_verify(&[arg(&dev.root), "--key", arg(&key)])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn each_tampering_recipe_exits_1_and_names_its_codes_in_json() {
    for (recipe, want) in RECIPES {
        let dir = tempfile::tempdir().unwrap();
        let mut dev =
            SampleDevice::with_generated_clips(&dir.path().join("d"), "A100002", 3, 1000).unwrap();
        dev.tamper(&recipe.replace('N', "2")).unwrap();
        let out = custody_verify(&["--json", arg(&dev.root)]);
        assert_eq!(out.status.code(), Some(1), "{recipe}");
        let want: BTreeSet<String> = want.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(json_codes(&out.stdout), want, "{recipe}");
    }
}

#[test]
fn a_key_nobody_enrolled_is_reported_when_keys_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let a = SampleDevice::with_generated_clips(&dir.path().join("a"), "A1", 1, 10).unwrap();
    let b = SampleDevice::with_generated_clips(&dir.path().join("b"), "B1", 1, 10).unwrap();
    let b_key = b.root.join("custody/devices/B1/device.pub.pem");
    let out = custody_verify(&["--json", arg(&a.root), "--key", arg(&b_key)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_codes(&out.stdout),
        BTreeSet::from(["device.key.untrusted".to_owned()])
    );
}

#[test]
fn what_cannot_be_checked_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = custody_verify(&[arg(&dir.path().join("missing"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    let bad_key = dir.path().join("bad.pem");
    fs::write(&bad_key, "not a key").unwrap();
    let out = custody_verify(&[arg(dir.path()), "--key", arg(&bad_key)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PUBLIC KEY"));
}

/// `custody verify … | head -n 1`: the reader closes the pipe before the verdict is
/// written; that is a normal end (exit 0), not a panic (exit 101).
#[test]
fn a_reader_that_stops_early_is_a_normal_end() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let dev = SampleDevice::with_generated_clips(&dir.path().join("d"), "A100003", 2, 10).unwrap();
    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
        cmd.args(["verify", "--at", &sample_time()])
            .args(json.then_some("--json"))
            .arg(&dev.root);
        let out = custody::testkit::run_with_closed_stdout(&mut cmd).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A record and a clip that exist but cannot be read (a clerk's account without the
/// rights, a failing disc) are findings with a stable code, and checking goes on: the
/// other clips are still verified and the verdict is "problems found", not "cannot run".
#[test]
fn unreadable_files_are_findings_and_checking_goes_on() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let dev = SampleDevice::with_generated_clips(&dir.path().join("d"), "A100004", 4, 100).unwrap();
    let clips: Vec<_> = dev
        .records()
        .map(|r| dev.root.join(&r.body().media().unwrap().file))
        .collect();
    // Everything readable by anyone (the check runs as an unprivileged user, since root
    // reads a file whatever its mode), then two files readable by no one.
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        let is_dir = path.is_dir();
        let mode = if is_dir { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        if is_dir {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    let record = custody::layout::record_path(&dev.root, "A100004", 3);
    for path in [&clips[1], &record] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o000)).unwrap();
    }
    let mut cmd = if nix_is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(env!("CARGO_BIN_EXE_custody"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_custody"))
    };
    let out = cmd
        .args(["verify", "--at", &sample_time(), "--json"])
        .arg(&dev.root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unreadable: BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "file.unreadable")
        .map(|f| f["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unreadable.len(), 2, "{report:#}");
    assert!(
        unreadable.iter().any(|s| s.ends_with("00000003.json")),
        "{unreadable:?}"
    );
    assert!(
        unreadable.iter().any(|s| s.contains("seq 2")),
        "{unreadable:?}"
    );
    // Clips 1 and 4 are still checked and verified.
    assert_eq!(report["devices"][0]["clips_verified"], 2, "{report:#}");
}

/// Whether this test runs as root (who reads any file whatever its mode).
fn nix_is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}
