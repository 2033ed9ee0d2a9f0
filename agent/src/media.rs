//! Media facts read with FFmpeg (`ffmpeg-next`): container, codecs, duration, resolution,
//! creation time. A file FFmpeg cannot read is still sealed: its record then says no facts
//! were read, and the clip is never held back for it.

use std::path::Path;
use std::sync::Once;

use chrono::DateTime;
use custody::MediaFacts;
use ffmpeg_next as ffmpeg;

/// Why no facts were read.
#[derive(Debug, thiserror::Error)]
#[error("FFmpeg cannot read {path}: {source}")]
pub struct ProbeError {
    /// The file.
    pub path: String,
    /// What FFmpeg said.
    #[source]
    pub source: ffmpeg::Error,
}

static INIT: Once = Once::new();
/// Bytes FFmpeg may read to recognise the container (its minimum useful value is 32).
const PROBE_BYTES: &str = "262144";
/// Microseconds of media FFmpeg may decode to fill in stream facts (MP4 headers carry them).
const ANALYZE_MICROS: &str = "100000";

/// Reads the facts of the media file at `path`.
///
/// `fragmented_duration_ms` is the duration of a fragmented MP4 that the agent already
/// read while the clip was recorded. FFmpeg then reads only the head of the file, not
/// every fragment, so sealing a long clip costs no more than a short one.
///
/// # Errors
/// [`ProbeError`] when FFmpeg cannot open or read the file.
pub fn probe(path: &Path, fragmented_duration_ms: Option<u64>) -> Result<MediaFacts, ProbeError> {
    INIT.call_once(|| {
        // Quiet: a recorder's odd file is a record without facts, not a log flood.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
        let _ = ffmpeg::init();
    });
    let err = |source| ProbeError {
        path: path.display().to_string(),
        source,
    };
    // Bounded probing: a recorder's container is recognised from its first bytes; a file
    // that is not media must not cost the seal the default 5 MB / 5 s of format guessing.
    let mut options = ffmpeg::Dictionary::new();
    options.set("probesize", PROBE_BYTES);
    options.set("analyzeduration", ANALYZE_MICROS);
    if fragmented_duration_ms.is_some() {
        // Stop after the first fragment instead of indexing them all.
        options.set("fflags", "+ignidx");
    }
    let input = ffmpeg::format::input_with_dictionary(path, options).map_err(err)?;
    let names = input.format().name().to_owned();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase)
        .unwrap_or_default();
    // FFmpeg names the MP4/MOV demuxer "mov,mp4,m4a,…": state the one the file is.
    let container = names
        .split(',')
        .find(|n| *n == ext)
        .or_else(|| names.split(',').next())
        .unwrap_or_default()
        .to_owned();
    let mut facts = MediaFacts {
        container,
        ..MediaFacts::default()
    };
    if let Some(video) = input.streams().best(ffmpeg::media::Type::Video) {
        facts.video_codec = Some(video.parameters().id().name().to_owned());
        // The picture size as the container states it. The agent's FFmpeg has no decoders
        // (scripts/build-ffmpeg), so the size is read from a codec context's fields, which
        // ffmpeg-next exposes on its encoder view; nothing is opened or decoded.
        if let Ok(ctx) = ffmpeg::codec::context::Context::from_parameters(video.parameters())
            && let Ok(picture) = ctx.encoder().video()
        {
            facts.width = Some(picture.width()).filter(|&w| w > 0);
            facts.height = Some(picture.height()).filter(|&h| h > 0);
        }
    }
    if let Some(audio) = input.streams().best(ffmpeg::media::Type::Audio) {
        facts.audio_codec = Some(audio.parameters().id().name().to_owned());
    }
    // Duration in AV_TIME_BASE (microsecond) units; negative means unknown.
    facts.duration_ms =
        fragmented_duration_ms.or_else(|| u64::try_from(input.duration()).ok().map(|us| us / 1000));
    facts.creation_time = input
        .metadata()
        .get("creation_time")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;

    /// A 2 s, 320×240 clip made by the FFmpeg command line (Debian's, with every encoder).
    fn clip(dir: &Path, name: &str, video: &str, audio: &str) -> std::path::PathBuf {
        let clip = dir.join(name);
        let out = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=duration=2:size=320x240:rate=25")
            .args(["-f", "lavfi", "-i", "sine=duration=2"])
            .args(["-c:v", video, "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
            .args(["-c:a", audio, "-shortest"])
            .args(["-metadata", "creation_time=2026-11-20T01:00:00Z"])
            .arg(&clip)
            .output()
            .expect("ffmpeg is installed by scripts/setup");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        clip
    }

    #[test]
    fn every_profile_s_container_and_codecs_are_read_by_the_agent_s_small_ffmpeg() {
        // What hw-profiles/profiles/ record: GA/T 947 recorder, Android terminal, legacy.
        let dir = tempfile::tempdir().unwrap();
        for (name, video, audio, expect) in [
            ("a.mp4", "libx264", "aac", ("mp4", "h264", "aac")),
            ("b.mp4", "libx265", "aac", ("mp4", "hevc", "aac")),
            (
                "c.mov",
                "libx264",
                "pcm_s16le",
                ("mov", "h264", "pcm_s16le"),
            ),
        ] {
            let facts = probe(&clip(dir.path(), name, video, audio), None).unwrap();
            assert_eq!(
                (
                    facts.container.as_str(),
                    facts.video_codec.as_deref().unwrap_or_default(),
                    facts.audio_codec.as_deref().unwrap_or_default()
                ),
                expect
            );
            assert_eq!(
                (facts.width, facts.height),
                (Some(320), Some(240)),
                "{name}"
            );
            assert!(
                facts
                    .duration_ms
                    .is_some_and(|d| (1900..=2200).contains(&d)),
                "{name}: {facts:?}"
            );
            assert_eq!(
                facts.creation_time.unwrap().to_rfc3339(),
                "2026-11-20T01:00:00+00:00",
                "{name}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_media_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.mp4");
        std::fs::write(&junk, b"not a video at all").unwrap();
        assert!(probe(&junk, None).is_err());
        assert!(probe(&dir.path().join("missing.mp4"), None).is_err());
    }
}
