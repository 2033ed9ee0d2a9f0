//! Test harness: run real tools and the `custody` binary, fail loudly when one is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a tool; panics with its stderr if it cannot be started (a missing tool fails).
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/test installs it): {e}"))
}

/// Runs a tool and requires success.
pub fn run_ok(program: &str, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the `custody` binary built for this test.
pub fn custody(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_custody"), args)
}

/// A path as a `&str` argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Runs `custody verify ARGS` as of the evening of the sample clips' day, so the verdict
/// does not depend on today's date.
pub fn custody_verify(args: &[&str]) -> Output {
    let at = sample_time();
    let mut all = vec!["verify", "--at", &at];
    all.extend_from_slice(args);
    custody(&all)
}

/// The time sample evidence is checked at: 18:00 Beijing on the sample clips' day.
pub fn sample_time() -> String {
    custody::testkit::sample_day(18).to_rfc3339()
}

/// Runs openssl in `dir`; its failure fails the test.
fn openssl_in(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An agency CA (`ca.pem`) and the station's certificate for 127.0.0.1 (`station.pem`,
/// `station.key`) in `dir`, made with the openssl CLI.
pub fn certificates(dir: &Path) {
    openssl_in(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Custody test CA",
        ],
    );
    openssl_in(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "station.key",
            "-out",
            "station.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl_in(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "station.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "station.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A binary of the workspace (`custody-agent`, `custody-station`, `recorder-sim`), built
/// beside `custody` by `cargo test --workspace`.
pub fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_custody")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test)",
        path.display()
    );
    path
}

/// The verifier key (`origin+hash+key`) of the station configured by `config`, as
/// `custody-station key` prints it first (creating the key on first use).
pub fn station_vkey(config: &Path) -> String {
    let out = Command::new(bin("custody-station"))
        .arg("--config")
        .arg(config)
        .arg("key")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}
