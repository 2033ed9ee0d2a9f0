//! The whole path with the real binaries, as an agency runs it: `recorder-sim` records
//! real MP4 segments, `custody-agent run` seals each as it closes, the device docks (its
//! storage appears in a slot), `custody-station serve` ingests it into the write-once
//! store, ledger and log and writes the receipt, and the agent verifies the receipt and
//! frees the clips. A handheld terminal does the same over HTTPS with
//! `custody-agent upload`.
//!
//! The binaries are the ones `cargo test --workspace` builds beside this test's own
//! `custody` binary. Every wait polls for what it waits for, up to a deadline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custody::MediaHash;
use custody_station::{EvidenceStore as _, LocalStore};

use crate::util::{bin, certificates, free_port};

/// How long any one step may take on a slow, busy machine.
const DEADLINE: Duration = Duration::from_secs(90);

/// A workspace binary built beside this test's `custody` binary.
/// A running binary, stopped with SIGTERM (then killed) when dropped, so a failing test
/// leaves nothing behind.
struct Running {
    name: &'static str,
    child: Child,
}

impl Running {
    fn start(name: &'static str, cmd: &mut Command, log: &Path) -> Self {
        let log = fs::File::create(log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name, child }
    }

    /// Stops it with SIGTERM and requires a clean exit.
    fn stop(mut self) {
        terminate(&mut self.child);
        let status = wait_exit(&mut self.child).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("{} did not stop on SIGTERM", self.name)
        });
        assert!(status.success(), "{} ended with {status}", self.name);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&mut self.child);
            if wait_exit(&mut self.child).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn wait_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Polls `done` until it holds or the deadline passes; `what` says what was awaited.
fn wait_for(what: &str, logs: &[&Path], mut done: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while Instant::now() < until {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let tails: Vec<String> = logs
        .iter()
        .map(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {}\n{}",
                p.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect();
    panic!("timed out waiting for {what}\n{}", tails.join("\n"));
}

/// Runs a binary to its end and returns its stdout; its failure fails the test.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A station folder: `station.toml` (with `extra` settings), and the verifier key the
/// agents enrol.
struct StationDir {
    dir: PathBuf,
    config: PathBuf,
    vkey: String,
}

impl StationDir {
    fn new(dir: &Path, extra: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        let config = dir.join("station.toml");
        fs::write(
            &config,
            format!(
                "dock-root = \"dock\"\ndata-dir = \"data\"\n\
                 origin = \"test.example/station-e2e\"\nparallel-copies = 2\n\
                 reserve-bytes = 0\n{extra}"
            ),
        )
        .unwrap();
        let vkey = crate::util::station_vkey(&config);
        Self {
            dir: dir.to_path_buf(),
            config,
            vkey,
        }
    }

    fn station(&self) -> Command {
        let mut cmd = Command::new(bin("custody-station"));
        cmd.arg("--config").arg(&self.config);
        cmd
    }

    /// Enrols the device of `agent_config` with the key its agent prints.
    fn enroll(&self, agent_config: &Path, serial: &str, profile: &str) {
        let printed = run_ok(
            Command::new(bin("custody-agent"))
                .arg("--config")
                .arg(agent_config)
                .arg("enroll"),
        );
        let mut pem = String::new();
        for line in printed.lines().filter(|l| !l.starts_with('#')) {
            pem.push_str(line);
            pem.push('\n');
        }
        let pem_path = self.dir.join(format!("{serial}.pub.pem"));
        fs::write(&pem_path, pem).unwrap();
        run_ok(
            self.station()
                .args([
                    "enroll",
                    "--serial",
                    serial,
                    "--hw-profile",
                    profile,
                    "--key",
                ])
                .arg(&pem_path)
                .args(["--officer", "42060119001:张三"]),
        );
    }

    /// The report of everything, as JSON.
    fn report(&self) -> serde_json::Value {
        let mut cmd = self.station();
        cmd.args(["--json", "report"])
            .arg("--out")
            .arg(self.dir.join("reports"));
        custody::testkit::act_as_clerk(&bin("custody-station"), &self.config, &mut cmd).unwrap();
        let out = cmd.output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every clip in the report is stored as signed and its object is in the store.
    fn assert_all_stored(&self, want: usize) {
        let report = self.report();
        let clips = report["clips"].as_array().unwrap();
        assert_eq!(clips.len(), want, "{report:#}");
        assert_eq!(report["totals"]["verified"], want, "{report:#}");
        assert_eq!(
            report["findings"].as_array().unwrap().len(),
            0,
            "{report:#}"
        );
        let store = LocalStore::open(&self.dir.join("data/store"), 0, false).unwrap();
        for clip in clips {
            let hex = clip["signed_sha256"].as_str().unwrap();
            let hash = MediaHash(hex::decode(hex).unwrap().try_into().unwrap());
            assert!(store.exists(&hash).unwrap(), "{hex} is not in the store");
        }
    }
}

/// Writes `dir/agent.toml` for device `serial` of model `profile`, enrolled with the
/// station key `vkey`, with `tables` (its bridge or its upload) after the common ones;
/// returns its path. `close_idle_ms` overrides when a clip that stopped growing closes.
fn agent_toml(
    dir: &Path,
    (serial, profile, close_idle_ms): (&str, &str, Option<u32>),
    vkey: &str,
    tables: &str,
) -> PathBuf {
    let close_idle = close_idle_ms.map_or_else(String::new, |ms| format!("close-idle-ms = {ms}\n"));
    let path = dir.join("agent.toml");
    fs::write(
        &path,
        format!(
            "serial = \"{serial}\"\nhw-profile = \"{profile}\"\nstorage = \"storage\"\n\
             state-dir = \"state\"\n{close_idle}[officer]\nname = \"张三\"\n\
             cert-no = \"42060119001\"\n[agency]\ncode = \"420600\"\n\
             name = \"襄阳市生态环境局\"\n[station]\nvkey = \"{vkey}\"\n{tables}"
        ),
    )
    .unwrap();
    path
}

/// Media files in `dir` (the recorder's clip folder).
fn media_in(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.path()
                    .extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("mp4"))
            })
            .count()
    })
}

fn records_of(storage: &Path, serial: &str) -> usize {
    let dir = custody::layout::device_dir(storage, serial).join(custody::layout::RECORDS_DIR);
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

#[test]
fn a_recorder_s_clips_are_sealed_docked_ingested_receipted_and_freed_by_the_real_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let st = StationDir::new(&root.join("station"), "");
    let dev = root.join("A100001");
    fs::create_dir_all(&dev).unwrap();
    let agent_config = agent_toml(
        &dev,
        ("A100001", "ga947-recorder", None),
        &st.vkey,
        "[bridge]\nport = \"ttySIM\"\nmass-storage-password = \"dock-1234\"\n",
    );
    st.enroll(&agent_config, "A100001", "ga947-recorder");

    // A short shift: two 2 s segments, stop, then docked until the test ends.
    fs::write(
        dev.join("shift.sim"),
        "record\nwait 5s\nstop\nwait 1s\ndock\nwait 10m\n",
    )
    .unwrap();
    let (agent_log, sim_log, serve_log) = (
        dev.join("agent.log"),
        dev.join("recorder.log"),
        root.join("serve.log"),
    );
    let logs = [agent_log.as_path(), sim_log.as_path(), serve_log.as_path()];
    let agent = Running::start(
        "custody-agent run",
        Command::new(bin("custody-agent"))
            .arg("--config")
            .arg(&agent_config)
            .arg("run"),
        &agent_log,
    );
    let nmea =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-bridge/tests/data/nmea/beidou-bd.log");
    let slot = st.dir.join("dock/slot-1");
    fs::create_dir_all(slot.parent().unwrap()).unwrap();
    let sim = Running::start(
        "recorder-sim",
        Command::new(bin("recorder-sim"))
            .args(["--serial", "A100001", "--segment-seconds", "2"])
            .arg("--storage")
            .arg(dev.join("storage"))
            .arg("--link")
            .arg(dev.join("ttySIM"))
            .arg("--dock-slot")
            .arg(&slot)
            .arg("--nmea")
            .arg(&nmea)
            .arg("--script")
            .arg(dev.join("shift.sim")),
        &sim_log,
    );

    // Docked: the agent sealed every closed segment before handing the storage over.
    wait_for("the recorder to dock into slot-1", &logs, || slot.is_dir());
    let clips_dir = slot.join("DCIM/100MEDIA");
    let clips = media_in(&clips_dir);
    assert!(clips >= 2, "{clips} clips recorded");
    wait_for("every clip to be sealed", &logs, || {
        records_of(&slot, "A100001") >= clips
    });

    // The station serves the dock: ingests the slot, writes the receipt.
    let serve = Running::start(
        "custody-station serve",
        st.station().arg("serve"),
        &serve_log,
    );
    let inbox = custody::layout::inbox_dir(&slot, "A100001");
    wait_for("the station's receipt on the device", &logs, || {
        fs::read_dir(&inbox).is_ok_and(|mut e| e.next().is_some())
    });
    // Beside its status the daemon keeps how the slot's session ended, for the web page
    // served on its own (`custody-station web`): the officer may take the recorder.
    let ended = st.dir.join("data/dock-ended.json");
    wait_for("the slot's end beside the daemon's status", &logs, || {
        fs::read(&ended)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| {
                v.as_array().is_some_and(|rows| {
                    rows.iter().any(|r| {
                        r["slot"] == "slot-1" && r["complete"] == true && r["receipt"] == true
                    })
                })
            })
    });
    // The agent verifies the receipt and frees exactly what it covers.
    wait_for("the agent to free the receipted clips", &logs, || {
        media_in(&clips_dir) == 0
    });
    assert_eq!(
        records_of(&slot, "A100001"),
        clips,
        "records stay on the device"
    );
    serve.stop();
    agent.stop();
    drop(sim); // the simulated recorder has no clean shutdown: it is switched off
    st.assert_all_stored(clips);
}

#[test]
fn a_terminal_uploads_over_https_to_the_serving_station_and_frees_its_clips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let pki = root.join("pki");
    fs::create_dir_all(&pki).unwrap();
    certificates(&pki);
    let port = free_port();
    let st = StationDir::new(
        &root.join("station"),
        &format!(
            "[upload]\nlisten = \"127.0.0.1:{port}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            pki.join("station.pem").display(),
            pki.join("station.key").display()
        ),
    );
    let dev = root.join("H200001");
    fs::create_dir_all(&dev).unwrap();
    let agent_config = agent_toml(
        &dev,
        ("H200001", "android-terminal", Some(0)),
        &st.vkey,
        &format!(
            "[upload]\nurl = \"https://127.0.0.1:{port}\"\nca = \"{}\"\nauto = false\n",
            pki.join("ca.pem").display()
        ),
    );
    st.enroll(&agent_config, "H200001", "android-terminal");
    let clips_dir = dev.join("storage/Movies/LawRecorder");
    fs::create_dir_all(&clips_dir).unwrap();
    for (i, len) in [(1u8, 300_000usize), (2, 120_000)] {
        fs::write(
            clips_dir.join(format!("VID_2026112{i}_0900.mp4")),
            vec![i; len],
        )
        .unwrap();
    }
    let serve_log = root.join("serve.log");
    let serve = Running::start(
        "custody-station serve",
        st.station().arg("serve"),
        &serve_log,
    );
    wait_for("the upload endpoint to listen", &[&serve_log], || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Sealing needs two looks at a closed file (it must have stopped growing).
    run_ok(
        Command::new(bin("custody-agent"))
            .arg("--config")
            .arg(&agent_config)
            .args(["run", "--once"]),
    );
    let said = run_ok(
        Command::new(bin("custody-agent"))
            .arg("--config")
            .arg(&agent_config)
            .arg("upload"),
    );
    assert!(said.contains("释放 2 个文件"), "{said}");
    assert_eq!(media_in(&clips_dir), 0, "the receipted clips are freed");
    assert_eq!(records_of(&dev.join("storage"), "H200001"), 2);
    serve.stop();
    st.assert_all_stored(2);
}
