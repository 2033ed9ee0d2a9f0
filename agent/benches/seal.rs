//! Agent benchmark: clip close → signed record latency for large clips (the running hash
//! leaves only the tail), against re-hashing the whole file at close; the share of one
//! core the agent spends while an 8 Mbit/s recording is written; peak RSS.
//!
//! `cargo bench -p custody-agent` (sizes in MiB via `CUSTODY_BENCH_MIB`, default
//! "1024,4096"; files go to `CUSTODY_BENCH_DIR`, default /var/tmp, which should be a disk).
#![expect(clippy::unwrap_used, reason = "a benchmark stops on a broken setup")]
#![expect(clippy::cast_precision_loss, reason = "MB/s for a report")]

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use custody_agent::{AgentConfig, Sealer};

/// Bytes the simulated recorder writes per call (a muxer's flush).
const CHUNK: usize = 4 << 20;

fn device(root: &Path) -> Sealer {
    let config = root.join("agent.toml");
    fs::write(&config, "serial = \"B000001\"\nhw-profile = \"ga947-recorder\"\nstorage = \"storage\"\nstate-dir = \"state\"\n[officer]\nname = \"张三\"\ncert-no = \"1\"\n[agency]\ncode = \"1\"\nname = \"局\"\n").unwrap();
    let cfg = AgentConfig::load(&config).unwrap();
    fs::create_dir_all(cfg.recording_dir()).unwrap();
    Sealer::load(cfg).unwrap()
}

/// A real fragmented MP4 (what an appends-only recorder writes) of about `mib` MiB, made
/// once with FFmpeg: Full HD MJPEG frames fill gigabytes in seconds.
fn real_clip(base: &Path, mib: usize) -> std::path::PathBuf {
    let path = base.join(format!("custody-bench-{mib}MiB.mp4"));
    if fs::metadata(&path).is_ok_and(|m| m.len() >= (mib as u64) << 20) {
        return path;
    }
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine",
        ])
        .args([
            "-t",
            "7200",
            "-fs",
            &((mib << 20) + (1 << 20)).to_string(),
            "-c:v",
            "mjpeg",
            "-q:v",
            "2",
            "-c:a",
            "aac",
        ])
        .args([
            "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof",
            "-frag_duration",
            "500000",
        ])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make the benchmark clip");
    path
}

/// Replays a real clip of `mib` MiB as a recorder writes it, letting the agent follow it,
/// then closes it and times the seal; then times a full re-hash of the same file.
fn latency(base: &Path, mib: usize) {
    let mut source = fs::File::open(real_clip(base, mib)).unwrap();
    let total = source.metadata().unwrap().len();
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut sealer = device(dir.path());
    let rec = dir.path().join("storage/DCIM/100MEDIA");
    let part = rec.join("B000001_20261120_090000_0001.MP4.part");
    let mut f = fs::File::create(&part).unwrap();
    // All but the recorder's last flush, with the agent following every 64 MiB.
    let mut body = (&mut source).take(total - (CHUNK as u64 / 2));
    let mut chunk = vec![0u8; CHUNK];
    let mut i = 0;
    loop {
        let n = body.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        f.write_all(&chunk[..n]).unwrap();
        i += 1;
        if i % 16 == 0 {
            sealer.scan().unwrap();
        }
    }
    f.sync_all().unwrap();
    sealer.scan().unwrap();
    // The last flush, then the rename that closes the clip.
    std::io::copy(&mut source, &mut f).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let closed = rec.join("B000001_20261120_090000_0001.MP4");
    fs::rename(&part, &closed).unwrap();
    let t = Instant::now();
    let new_records = sealer.scan().unwrap();
    let seal = t.elapsed();
    assert_eq!(new_records.len(), 1);
    let facts = new_records[0].body().media().unwrap().facts.clone();
    let facts = facts.unwrap(); // a real clip has facts
    // What the seal no longer does: FFmpeg walking every fragment of the closed file.
    let t = Instant::now();
    let walked = custody_agent::media::probe(&closed, None).unwrap();
    let probe = t.elapsed();
    let (followed, at_close) = (facts.duration_ms.unwrap(), walked.duration_ms.unwrap());
    assert!(
        followed.abs_diff(at_close) <= 1,
        "duration read while recording {followed} ms, by FFmpeg at close {at_close} ms"
    );
    // One durable small write (the seal does several: SQLite commit, record and signature
    // files, their folder).
    let t = Instant::now();
    custody::layout::write_atomic(&dir.path().join("fsync-probe"), b"x").unwrap();
    let one_durable_write = t.elapsed();
    let t = Instant::now();
    let (size, _) =
        custody::hash_reader(fs::File::open(&closed).unwrap(), &mut vec![0; 128 << 10]).unwrap();
    let rehash = t.elapsed();
    println!(
        "clip {mib:>5} MiB: close -> signed record {:>8.2} ms | re-hash at close {:>9.2} ms ({:.0} MB/s) | ratio {:.0}x",
        seal.as_secs_f64() * 1e3,
        rehash.as_secs_f64() * 1e3,
        size as f64 / rehash.as_secs_f64() / 1e6,
        rehash.as_secs_f64() / seal.as_secs_f64()
    );
    println!(
        "  FFmpeg reading every fragment at close (what the follower saves) {:.2} ms; one durable small write (temp, fsync, rename, fsync dir) {:.2} ms",
        probe.as_secs_f64() * 1e3,
        one_durable_write.as_secs_f64() * 1e3
    );
}

/// CPU time (user + system, clock ticks) and peak RSS (KiB) of a process, from /proc.
fn proc_usage(pid: u32) -> (u64, u64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

/// A real 10 s segment as a recorder writes it: fragmented MP4, H.264 at 8 Mbit/s and AAC,
/// made once with FFmpeg.
fn recording_segment(base: &Path) -> std::path::PathBuf {
    let path = base.join("custody-bench-8mbit-10s.mp4");
    if fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
        return path;
    }
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=25")
        .args(["-f", "lavfi", "-i", "sine", "-t", "10"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "8M"])
        .args(["-maxrate", "8M", "-bufsize", "4M", "-c:a", "aac"])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
        .args(["-frag_duration", "500000"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "ffmpeg could not make the recording segment"
    );
    path
}

/// The real agent process (`custody-agent run`) while an 8 Mbit/s recording (a real
/// fragmented MP4 segment in 100 ms flushes, closed by rename every 10 s) is written for
/// `secs` seconds: its CPU time over the wall time, and its peak RSS.
fn recording_load(base: &Path, secs: u64) {
    let dir = tempfile::tempdir_in(base).unwrap();
    drop(device(dir.path()));
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_custody-agent"))
        .arg("--config")
        .arg(dir.path().join("agent.toml"))
        .arg("run")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let rec = dir.path().join("storage/DCIM/100MEDIA");
    let segment_bytes = fs::read(recording_segment(base)).unwrap();
    let flush_len = segment_bytes.len().div_ceil(100);
    std::thread::sleep(Duration::from_millis(500));
    let (ticks_before, _) = proc_usage(agent.id());
    let start = Instant::now();
    let mut segment = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        segment += 1;
        let part = rec.join(format!(
            "B000001_20261120_0900{segment:02}_{segment:04}.MP4.part"
        ));
        let mut f = fs::File::create(&part).unwrap();
        for flush in segment_bytes.chunks(flush_len) {
            f.write_all(flush).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        fs::rename(&part, part.with_extension("")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let wall = start.elapsed();
    let (ticks_after, peak_rss) = proc_usage(agent.id());
    let _ = agent.kill();
    let _ = agent.wait();
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    let cpu = Duration::from_millis((ticks_after - ticks_before) * 10);
    println!(
        "custody-agent run, 8 Mbit/s recording for {:.0} s ({segment} segments): CPU {} ms = {:.2} % of one core; peak RSS {peak_rss} KiB",
        wall.as_secs_f64(),
        cpu.as_millis(),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
}

fn main() {
    let base = std::env::var("CUSTODY_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let sizes = std::env::var("CUSTODY_BENCH_MIB").unwrap_or_else(|_| "1024,4096".into());
    // `cargo bench` passes `--bench`; `cargo test --benches` would too: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for mib in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        latency(Path::new(&base), mib);
    }
    recording_load(Path::new(&base), 30);
}
