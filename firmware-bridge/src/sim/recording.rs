//! The simulated camera: FFmpeg writes each segment in real time (`-re`), so the file grows
//! as on a real recorder, under the profile's name and closing pattern.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hw_profiles::{Closing, FileNamePattern, HwProfile};

/// What the recorder reports back to the device loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderEvent {
    /// A segment started; the file (relative to the storage root) is being written.
    Started(String),
    /// A segment closed under its final name (relative to the storage root).
    Closed(String),
}

/// Shortest clip: a stop right after a segment starts still leaves a playable second.
const MIN_CLIP: Duration = Duration::from_secs(1);

/// A segment being written.
struct Segment {
    child: Child,
    started: Instant,
    /// Where FFmpeg writes (with the recording suffix when the profile renames on close).
    writing: PathBuf,
    /// The closed clip's name.
    final_path: PathBuf,
}

/// Records segments one after another until stopped.
pub struct Camera {
    storage: PathBuf,
    dir: String,
    pattern: FileNamePattern,
    closing: Closing,
    suffix: String,
    segment_seconds: u32,
    ffmpeg_args: Vec<String>,
    serial: String,
    seq: u32,
    segment: Option<Segment>,
}

fn encoder(codec: &str) -> &str {
    match codec {
        "h264" => "libx264",
        "hevc" => "libx265",
        other => other,
    }
}

impl Camera {
    /// A camera for `profile`, writing under `storage`; `segment_seconds` overrides the
    /// profile's segment length (demos and tests).
    ///
    /// # Errors
    /// The profile's file pattern does not parse (a loaded profile always does).
    pub fn new(
        profile: &HwProfile,
        storage: &Path,
        serial: &str,
        segment_seconds: Option<u32>,
    ) -> io::Result<Self> {
        let r = &profile.recording;
        let ffmpeg_args = [
            "-c:v",
            encoder(&r.video_codec),
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            &format!("{}k", r.bitrate_kbps),
            "-c:a",
            &r.audio_codec,
            "-f",
            &r.container,
            // Write each packet as it is encoded: the file grows steadily, as on a recorder.
            "-flush_packets",
            "1",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let fragmented = if profile.storage.appends_only && r.container == "mp4" {
            // Fragmented MP4 in 0.5 s fragments: only ever appended, playable after a crash.
            [
                "-movflags",
                "+frag_keyframe+empty_moov+default_base_moof",
                "-frag_duration",
                "500000",
            ]
            .map(String::from)
            .to_vec()
        } else {
            Vec::new()
        };
        let x264_fast = if r.video_codec == "h264" {
            vec!["-preset".into(), "ultrafast".into()]
        } else {
            Vec::new()
        };
        Ok(Self {
            storage: storage.to_path_buf(),
            dir: profile.storage.recording_dir.clone(),
            pattern: profile.file_pattern().map_err(io::Error::other)?,
            closing: profile.storage.closing,
            suffix: profile.storage.recording_suffix.clone().unwrap_or_default(),
            segment_seconds: segment_seconds.unwrap_or(r.segment_seconds),
            ffmpeg_args: [x264_fast, ffmpeg_args, fragmented].concat(),
            serial: serial.into(),
            seq: 0,
            segment: None,
        }
        .with_size(r.width, r.height))
    }

    fn with_size(mut self, width: u32, height: u32) -> Self {
        // Full HD encodes slower than real time on two cores; the simulator records a
        // quarter of each side, same aspect, same codec and container.
        self.ffmpeg_args.splice(
            0..0,
            [
                "-s".to_owned(),
                format!("{}x{}", (width / 4) & !1, (height / 4) & !1),
            ],
        );
        self
    }

    /// Whether a segment is being written.
    pub fn is_recording(&self) -> bool {
        self.segment.is_some()
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.storage)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// Starts a segment at device time `rtc`.
    ///
    /// # Errors
    /// FFmpeg cannot be started (it must be installed) or the folder cannot be made.
    pub fn start(&mut self, rtc: DateTime<Utc>) -> io::Result<RecorderEvent> {
        self.seq += 1;
        let dir = self.storage.join(&self.dir);
        fs::create_dir_all(&dir)?;
        let name = self
            .pattern
            .render(&self.serial, rtc.naive_local(), self.seq);
        let final_path = dir.join(&name);
        let writing = match self.closing {
            Closing::Rename => dir.join(format!("{name}{}", self.suffix)),
            Closing::StopsGrowing => final_path.clone(),
        };
        let tone = format!("sine=frequency={}", 300 + (self.seq % 5) * 100);
        let child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostats",
                "-y",
                "-re",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc=rate=25",
                "-f",
                "lavfi",
                "-i",
                &tone,
            ])
            .args(["-t", &self.segment_seconds.to_string()])
            .args(&self.ffmpeg_args)
            .args([
                "-metadata",
                &format!("creation_time={}", rtc.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            ])
            .arg(&writing)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run ffmpeg (install it; scripts/setup does): {e}"),
                )
            })?;
        let event = RecorderEvent::Started(self.rel(&writing));
        self.segment = Some(Segment {
            child,
            started: Instant::now(),
            writing,
            final_path,
        });
        Ok(event)
    }

    /// Checks the running segment; when it has reached its length, closes it (rename when
    /// the profile says so) and starts the next one at device time `rtc`.
    ///
    /// # Errors
    /// FFmpeg failed, or the rename failed.
    pub fn poll(&mut self, rtc: DateTime<Utc>) -> io::Result<Vec<RecorderEvent>> {
        let Some(seg) = &mut self.segment else {
            return Ok(Vec::new());
        };
        let Some(status) = seg.child.try_wait()? else {
            return Ok(Vec::new());
        };
        let closed = self.close_finished(status.success())?;
        let started = self.start(rtc)?;
        Ok(vec![closed, started])
    }

    /// Stops recording: FFmpeg finishes the file (it is told `q`), which is then closed.
    ///
    /// # Errors
    /// FFmpeg failed, or the rename failed.
    pub fn stop(&mut self) -> io::Result<Option<RecorderEvent>> {
        let Some(seg) = &mut self.segment else {
            return Ok(None);
        };
        if let Some(rest) = MIN_CLIP.checked_sub(seg.started.elapsed()) {
            std::thread::sleep(rest);
        }
        if let Some(stdin) = seg.child.stdin.as_mut() {
            // `q` asks FFmpeg to finish the file properly (moov atom written).
            let _ = stdin.write_all(b"q");
        }
        let ok = seg.child.wait()?.success();
        self.close_finished(ok).map(Some)
    }

    fn close_finished(&mut self, ok: bool) -> io::Result<RecorderEvent> {
        let seg = self
            .segment
            .take()
            .ok_or_else(|| io::Error::other("no segment"))?;
        if !ok {
            return Err(io::Error::other(format!(
                "ffmpeg failed writing {}",
                seg.writing.display()
            )));
        }
        if seg.writing != seg.final_path {
            fs::rename(&seg.writing, &seg.final_path)?;
        }
        Ok(RecorderEvent::Closed(self.rel(&seg.final_path)))
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        if let Some(seg) = &mut self.segment {
            let _ = seg.child.kill();
            let _ = seg.child.wait();
        }
    }
}
