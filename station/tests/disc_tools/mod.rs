//! What the disc and export tests share: extracting an image as a court's machine
//! would, and running the verification commands a disc's or package's README gives.

use std::fs;
use std::path::Path;

/// Extracts a disc image into a new folder (user space, as a court's machine reads it).
pub fn extract(image: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(image)
        .args(["-extract", "/"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dir
}

/// Runs the verification commands the disc's own README gives, in the disc's root, with
/// nothing on the PATH but a shell, the coreutils it names and openssl.
pub fn run_readme(root: &Path) -> std::process::Output {
    let readme = fs::read_to_string(root.join(custody_station::README_FILE)).unwrap();
    let lines: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != custody_station::SCRIPT_BEGIN)
        .skip(1)
        .take_while(|l| *l != custody_station::SCRIPT_END)
        .collect();
    let script = lines.join("\n");
    assert!(
        script.contains("openssl"),
        "no script in the README:\n{readme}"
    );
    let bin = tempfile::tempdir().unwrap();
    for tool in [
        "sh",
        "sha256sum",
        "cut",
        "tr",
        "basenc",
        "od",
        "head",
        "tail",
        "base64",
        "mktemp",
        "cat",
        "rm",
        "openssl",
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
    }
    std::process::Command::new(bin.path().join("sh"))
        .arg("-c")
        .arg(&script)
        .current_dir(root)
        .env_clear()
        .env("PATH", bin.path())
        .output()
        .unwrap()
}
