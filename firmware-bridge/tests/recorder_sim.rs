//! `recorder-sim` run as an integrator runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recorder-sim"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_short_shift_leaves_closed_clips_in_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shift.sim");
    std::fs::write(&script, "record\nwait 2s\nmark\nstop\ndock\n").unwrap();
    let storage = dir.path().join("storage");
    let link = dir.path().join("tty");
    let out = sim(&[
        "--storage",
        storage.to_str().unwrap(),
        "--link",
        link.to_str().unwrap(),
        "--segment-seconds",
        "5",
        "--script",
        script.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("on /dev/pts/"));
    let clips: Vec<_> = std::fs::read_dir(storage.join("DCIM/100MEDIA"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(clips.len(), 1, "{clips:?}");
    assert!(
        clips[0].starts_with("A100001_") && clips[0].ends_with("_0001.MP4"),
        "{clips:?}"
    );
    assert!(
        !link.exists(),
        "the port link is removed when the device stops"
    );
}

#[test]
fn what_cannot_run_exits_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let script = dir.path().join("bad.sim");
    std::fs::write(&script, "record\nfly away\n").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--storage",
                d,
                "--link",
                &format!("{d}/t"),
                "--script",
                script.to_str().unwrap(),
            ],
            "line 2",
        ),
        (
            &[
                "--storage",
                d,
                "--link",
                &format!("{d}/t"),
                "--profile",
                "no-such-model",
            ],
            "no profile",
        ),
        (
            &[
                "--storage",
                d,
                "--link",
                &format!("{d}/t"),
                "--profile",
                "legacy-recorder",
            ],
            "no MCU link",
        ),
        (
            &[
                "--storage",
                d,
                "--link",
                &format!("{d}/t"),
                "--serial",
                "A1/../x",
            ],
            "7 letters or digits",
        ),
    ];
    for (args, want) in cases {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
