//! The duration of a fragmented MP4, read while it is written. The follower feeds this
//! every byte it hashes; only the `moov` box and one `moof` box at a time are kept, so at
//! close the clip's duration is known at once. (FFmpeg finds it by walking every fragment
//! in the file, which takes time in proportion to the clip's length.)
//!
//! Everything here is read from a file a recorder is still writing, so it is hostile: an
//! odd or damaged box makes the timeline unusable, and FFmpeg reads the whole file at
//! close instead. That costs time but gives up no media fact.

use std::collections::HashMap;

/// Largest `moov` or `moof` box kept in memory. A recorder's boxes are a few KiB; a larger
/// one makes the timeline unusable rather than growing the agent's memory.
const MAX_BOX: u64 = 4 << 20;

/// What a fragmented MP4 has told so far about its tracks' decode times.
#[derive(Debug, Clone, Default)]
pub struct FragmentTimeline {
    state: State,
    /// A box header being read (8 bytes, or 16 with a 64-bit size).
    header: Vec<u8>,
    /// The `moov` or `moof` box being read.
    body: Vec<u8>,
    /// Tracks by id, from `moov`.
    tracks: HashMap<u32, Track>,
    /// `moov` was read and announces fragments (`mvex`).
    fragmented: bool,
    /// `moof` boxes read.
    fragments: u64,
}

/// One track's time base and how far its samples reach.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    /// Ticks per second (`mdhd`).
    timescale: u32,
    /// Sample duration when a fragment gives none (`trex`).
    default_duration: u32,
    /// Decode time just past the last sample read, in ticks.
    end: u64,
}

/// Where the reader is in the stream of top-level boxes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// At (or inside) a box header.
    #[default]
    Header,
    /// Inside a box whose content is not needed (`mdat`, `ftyp`, `free`…): bytes left.
    Skip(u64),
    /// Inside a `moov` or `moof` box being kept: bytes left.
    Keep { kind: [u8; 4], left: u64 },
    /// Not a fragmented MP4 this reader follows.
    Unusable,
}

impl FragmentTimeline {
    /// Reads the next bytes of the file.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Unusable => return,
                State::Header => {
                    let take = (self.header_len() - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.header.len() == self.header_len() {
                        self.state = self.open_box();
                    }
                }
                State::Skip(left) => {
                    let take = left.min(data.len() as u64);
                    data = &data[usize::try_from(take).unwrap_or(data.len())..];
                    self.state = State::Skip(left - take);
                }
                State::Keep { kind, left } => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    self.body.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.state = State::Keep {
                        kind,
                        left: left - take as u64,
                    };
                }
            }
            self.close_box();
        }
    }

    /// The clip's duration in milliseconds: how far its longest track reaches. `None`
    /// unless the bytes fed so far are a whole fragmented MP4 (a `moov` announcing
    /// fragments, at least one `moof`, and nothing cut off at the end).
    pub fn duration_ms(&self) -> Option<u64> {
        if self.state != State::Header || !self.header.is_empty() {
            return None;
        }
        if !self.fragmented || self.fragments == 0 || self.tracks.is_empty() {
            return None;
        }
        self.tracks
            .values()
            .map(|t| {
                (t.timescale > 0).then(|| {
                    let ms = u128::from(t.end) * 1000 / u128::from(t.timescale);
                    u64::try_from(ms).unwrap_or(u64::MAX)
                })
            })
            .try_fold(0, |longest, ms| Some(longest.max(ms?)))
    }

    /// Bytes in the box header being read: 16 when its size field says a 64-bit size
    /// follows.
    fn header_len(&self) -> usize {
        if self.header.get(..4) == Some(&[0, 0, 0, 1]) {
            16
        } else {
            8
        }
    }

    /// The state after a complete box header.
    fn open_box(&mut self) -> State {
        let h = &self.header;
        let kind: [u8; 4] = [h[4], h[5], h[6], h[7]];
        let (size, header_len) = match be_u32(h) {
            // A box running to the end of the file: nothing can follow it.
            0 => return State::Unusable,
            1 => (be_u64(&h[8..]), 16),
            n => (u64::from(n), 8),
        };
        self.header.clear();
        let Some(content) = size.checked_sub(header_len) else {
            return State::Unusable;
        };
        match &kind {
            b"moov" | b"moof" if content > MAX_BOX => State::Unusable,
            b"moov" | b"moof" => {
                self.body.clear();
                State::Keep {
                    kind,
                    left: content,
                }
            }
            _ => State::Skip(content),
        }
    }

    /// Reads a box once all its bytes are in.
    fn close_box(&mut self) {
        match self.state {
            State::Skip(0) => self.state = State::Header,
            State::Keep { kind, left: 0 } => {
                let body = std::mem::take(&mut self.body);
                let read = match &kind {
                    b"moov" if self.tracks.is_empty() => self.read_moov(&body),
                    b"moof" if self.fragmented => self.read_moof(&body),
                    _ => None,
                };
                self.body = body;
                self.body.clear();
                self.state = if read.is_some() {
                    State::Header
                } else {
                    State::Unusable
                };
            }
            _ => {}
        }
    }

    /// Track ids and time scales (`trak`), default sample durations (`mvex/trex`).
    fn read_moov(&mut self, moov: &[u8]) -> Option<()> {
        let mut defaults = Vec::new();
        for child in Boxes(moov) {
            let (kind, content) = child?;
            match &kind {
                b"trak" => {
                    let (id, timescale) = read_trak(content)?;
                    let track = self.tracks.entry(id).or_default();
                    track.timescale = timescale;
                }
                b"mvex" => {
                    self.fragmented = true;
                    for grandchild in Boxes(content) {
                        let (kind, trex) = grandchild?;
                        if &kind == b"trex" {
                            // version/flags, track_ID, sample description index, duration
                            let mut r = Reader(trex);
                            r.skip(4)?;
                            let id = r.u32()?;
                            r.skip(4)?;
                            defaults.push((id, r.u32()?));
                        }
                    }
                }
                _ => {}
            }
        }
        for (id, duration) in defaults {
            self.tracks.get_mut(&id)?.default_duration = duration;
        }
        Some(())
    }

    /// Each track fragment's decode time (`tfdt`) and sample durations (`trun`).
    fn read_moof(&mut self, moof: &[u8]) -> Option<()> {
        for child in Boxes(moof) {
            let (kind, traf) = child?;
            if &kind != b"traf" {
                continue;
            }
            let mut track_id = None;
            let mut default_duration = None;
            let mut base = None;
            let mut ticks = 0u64;
            for grandchild in Boxes(traf) {
                let (kind, content) = grandchild?;
                let mut r = Reader(content);
                match &kind {
                    b"tfhd" => {
                        let flags = r.u32()? & 0x00ff_ffff;
                        let id = r.u32()?;
                        let track = self.tracks.get(&id)?;
                        if flags & 0x01 != 0 {
                            r.skip(8)?; // base data offset
                        }
                        if flags & 0x02 != 0 {
                            r.skip(4)?; // sample description index
                        }
                        default_duration = Some(if flags & 0x08 != 0 {
                            r.u32()?
                        } else {
                            track.default_duration
                        });
                        track_id = Some(id);
                    }
                    b"tfdt" => {
                        let version = r.u32()? >> 24;
                        base = Some(if version == 1 {
                            r.u64()?
                        } else {
                            u64::from(r.u32()?)
                        });
                    }
                    b"trun" => ticks = ticks.checked_add(trun_ticks(r, default_duration?)?)?,
                    _ => {}
                }
            }
            let track = self.tracks.get_mut(&track_id?)?;
            track.end = base.unwrap_or(track.end).checked_add(ticks)?;
        }
        self.fragments += 1;
        Some(())
    }
}

/// A track's id (`tkhd`) and time scale (`mdia/mdhd`).
fn read_trak(trak: &[u8]) -> Option<(u32, u32)> {
    let mut id = None;
    let mut timescale = None;
    for child in Boxes(trak) {
        let (kind, content) = child?;
        match &kind {
            b"tkhd" => {
                let mut r = Reader(content);
                let version = r.u32()? >> 24;
                // creation and modification times, 32 or 64 bits each
                r.skip(if version == 1 { 16 } else { 8 })?;
                id = Some(r.u32()?);
            }
            b"mdia" => {
                for grandchild in Boxes(content) {
                    let (kind, mdhd) = grandchild?;
                    if &kind == b"mdhd" {
                        let mut r = Reader(mdhd);
                        let version = r.u32()? >> 24;
                        r.skip(if version == 1 { 16 } else { 8 })?;
                        timescale = Some(r.u32()?);
                    }
                }
            }
            _ => {}
        }
    }
    Some((id?, timescale?))
}

/// The ticks one track run covers.
fn trun_ticks(mut r: Reader<'_>, default_duration: u32) -> Option<u64> {
    let flags = r.u32()? & 0x00ff_ffff;
    let samples = r.u32()?;
    if flags & 0x001 != 0 {
        r.skip(4)?; // data offset
    }
    if flags & 0x004 != 0 {
        r.skip(4)?; // first sample flags
    }
    if flags & 0x100 == 0 {
        return u64::from(samples).checked_mul(u64::from(default_duration));
    }
    // Per sample: duration, then size, flags and composition offset if present.
    let rest = 4 * [0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count();
    let mut ticks = 0u64;
    for _ in 0..samples {
        ticks += u64::from(r.u32()?);
        r.skip(rest)?;
    }
    Some(ticks)
}

/// The boxes inside a box's content, as (type, content); an error on a box that does not
/// fit.
struct Boxes<'a>(&'a [u8]);

impl<'a> Iterator for Boxes<'a> {
    type Item = Option<([u8; 4], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = (|| {
            let mut r = Reader(self.0);
            let size = r.u32()?;
            let kind = r.take(4)?;
            let kind = [kind[0], kind[1], kind[2], kind[3]];
            let (size, header) = match size {
                0 => (self.0.len() as u64, 8),
                1 => (r.u64()?, 16),
                n => (u64::from(n), 8),
            };
            let size = usize::try_from(size).ok()?;
            let content = self.0.get(header..size)?;
            self.0 = &self.0[size..];
            Some((kind, content))
        })();
        if item.is_none() {
            self.0 = &[];
        }
        Some(item)
    }
}

/// Big-endian fields from the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(drop)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(be_u32)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(be_u64)
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;

    /// A box: size, type, content.
    fn bx(kind: [u8; 4], content: &[u8]) -> Vec<u8> {
        let size = u32::try_from(8 + content.len()).unwrap();
        [&size.to_be_bytes()[..], &kind, content].concat()
    }

    /// A full box: version and flags, then the fields.
    fn full(kind: [u8; 4], version_flags: u32, fields: &[u32]) -> Vec<u8> {
        let mut content = version_flags.to_be_bytes().to_vec();
        for f in fields {
            content.extend_from_slice(&f.to_be_bytes());
        }
        bx(kind, &content)
    }

    /// `moov` with one track of `timescale` ticks per second, fragments of `default` ticks
    /// per sample.
    fn moov(timescale: u32, default: u32) -> Vec<u8> {
        let tkhd = full(*b"tkhd", 0, &[0, 0, 1, 0, 0]);
        let mdhd = full(*b"mdhd", 0, &[0, 0, timescale, 0]);
        let trak = bx(*b"trak", &[tkhd, bx(*b"mdia", &mdhd)].concat());
        let trex = full(*b"trex", 0, &[1, 1, default, 0, 0]);
        bx(*b"moov", &[trak, bx(*b"mvex", &trex)].concat())
    }

    /// `moof` for track 1: a decode time (if any) and one run of `samples`, with each
    /// sample's duration written out when `durations` is given.
    fn moof(decode_time: Option<u32>, samples: u32, durations: Option<&[u32]>) -> Vec<u8> {
        let tfhd = full(*b"tfhd", 0x02_0000, &[1]);
        let tfdt = decode_time
            .map(|t| full(*b"tfdt", 0, &[t]))
            .unwrap_or_default();
        let trun = match durations {
            Some(d) => full(
                *b"trun",
                0x100 | 0x200,
                &[
                    [samples].as_slice(),
                    &d.iter().flat_map(|&d| [d, 1000]).collect::<Vec<_>>(),
                ]
                .concat(),
            ),
            None => full(*b"trun", 0, &[samples]),
        };
        bx(*b"moof", &bx(*b"traf", &[tfhd, tfdt, trun].concat()))
    }

    fn timeline(bytes: &[u8], chunk: usize) -> FragmentTimeline {
        let mut t = FragmentTimeline::default();
        for piece in bytes.chunks(chunk) {
            t.feed(piece);
        }
        t
    }

    #[test]
    fn runs_add_up_per_track_and_a_fragment_without_decode_time_continues() {
        let file = [
            bx(*b"ftyp", b"isom\0\0\0\0"),
            moov(1000, 40),
            moof(Some(0), 3, None),
            bx(*b"mdat", &[0; 100]),
            moof(None, 2, Some(&[40, 45])),
            bx(*b"mdat", &[0; 50]),
        ]
        .concat();
        for chunk in [1, 3, 7, 64, file.len()] {
            assert_eq!(timeline(&file, chunk).duration_ms(), Some(205), "{chunk}");
        }
        // A later fragment's own decode time wins over the sum so far (a gap in recording).
        let gap = [
            moov(90_000, 3600),
            moof(Some(0), 25, None),
            moof(Some(900_000), 25, None),
        ]
        .concat();
        assert_eq!(timeline(&gap, 5).duration_ms(), Some(11_000));
    }

    #[test]
    fn a_64_bit_box_size_is_followed() {
        let mut mdat = 1u32.to_be_bytes().to_vec();
        mdat.extend_from_slice(b"mdat");
        mdat.extend_from_slice(&(16u64 + 20).to_be_bytes());
        mdat.extend_from_slice(&[0; 20]);
        let file = [
            moov(1000, 10),
            moof(Some(0), 4, None),
            mdat,
            moof(None, 1, None),
        ]
        .concat();
        for chunk in [1, 5, 17] {
            assert_eq!(timeline(&file, chunk).duration_ms(), Some(50));
        }
    }

    #[test]
    fn a_file_cut_mid_box_or_without_fragments_has_no_duration() {
        let file = [
            moov(1000, 40),
            moof(Some(0), 3, None),
            bx(*b"mdat", &[0; 100]),
        ]
        .concat();
        assert_eq!(timeline(&file, 9).duration_ms(), Some(120));
        for cut in [1, 50, 107, 110] {
            assert_eq!(
                timeline(&file[..file.len() - cut], 9).duration_ms(),
                None,
                "{cut}"
            );
        }
        // Cut just after the fragment, it is the clip so far.
        assert_eq!(
            timeline(&file[..file.len() - 108], 9).duration_ms(),
            Some(120)
        );
        // moov alone, moov without fragments, a fragment before any moov
        assert_eq!(timeline(&moov(1000, 40), 9).duration_ms(), None);
        let plain = [bx(*b"moov", &[]), bx(*b"mdat", &[0; 10])].concat();
        assert_eq!(timeline(&plain, 9).duration_ms(), None);
        let early = [moof(Some(0), 3, None), moov(1000, 40), moof(None, 3, None)].concat();
        assert_eq!(timeline(&early, 9).duration_ms(), None);
    }

    #[test]
    fn hostile_boxes_make_the_timeline_unusable_without_growing_memory() {
        // A moof claiming 1 GiB: nothing of it is kept.
        let mut huge = [moov(1000, 40), moof(Some(0), 3, None)].concat();
        huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
        huge.extend_from_slice(b"moof");
        huge.extend_from_slice(&vec![0xAB; 1 << 16]);
        let t = timeline(&huge, 4096);
        assert_eq!(t.duration_ms(), None);
        assert!(t.body.capacity() < 1 << 16, "{}", t.body.capacity());
        // A run claiming four billion sample durations in a few bytes.
        let lying = full(*b"trun", 0x100, &[u32::MAX, 40]);
        let tfhd = full(*b"tfhd", 0x02_0000, &[1]);
        let file = [
            moov(1000, 40),
            bx(*b"moof", &bx(*b"traf", &[tfhd, lying].concat())),
        ]
        .concat();
        assert_eq!(timeline(&file, 64).duration_ms(), None);
        // A fragment of a track the moov never named; a box smaller than its own header.
        let tfhd = full(*b"tfhd", 0x02_0000, &[7]);
        let stranger = [moov(1000, 40), bx(*b"moof", &bx(*b"traf", &tfhd))].concat();
        assert_eq!(timeline(&stranger, 64).duration_ms(), None);
        let small = [
            moov(1000, 40),
            moof(Some(0), 3, None),
            4u32.to_be_bytes().to_vec(),
            b"free".to_vec(),
        ]
        .concat();
        assert_eq!(timeline(&small, 64).duration_ms(), None);
        // A zero time scale gives no duration rather than a division by zero.
        assert_eq!(
            timeline(&[moov(0, 40), moof(Some(0), 3, None)].concat(), 64).duration_ms(),
            None
        );
    }

    fn ffmpeg(out: &Path, movflags: &[&str]) {
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=duration=3:size=160x120:rate=25")
            .args(["-f", "lavfi", "-i", "sine=duration=3"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-shortest"])
            .args(movflags)
            .arg(out)
            .status()
            .expect("ffmpeg is installed by scripts/setup");
        assert!(status.success());
    }

    #[test]
    fn a_real_fragmented_clip_lasts_what_ffmpeg_finds_walking_every_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        ffmpeg(
            &clip,
            &[
                "-movflags",
                "+frag_keyframe+empty_moov+default_base_moof",
                "-frag_duration",
                "500000",
            ],
        );
        let bytes = std::fs::read(&clip).unwrap();
        let walked = crate::media::probe(&clip, None)
            .unwrap()
            .duration_ms
            .unwrap();
        for chunk in [1, 1000, 65_536, bytes.len()] {
            let t = timeline(&bytes, chunk);
            assert!(t.fragments >= 6, "{}", t.fragments);
            let read = t.duration_ms().unwrap();
            assert!(
                read.abs_diff(walked) <= 1,
                "followed {read} ms, FFmpeg {walked} ms"
            );
        }
        // Told the followed duration, FFmpeg reads the head only; the other facts are the
        // same as from its full walk.
        let followed = timeline(&bytes, 65_536).duration_ms().unwrap();
        let head_only = crate::media::probe(&clip, Some(followed)).unwrap();
        let full = crate::media::probe(&clip, None).unwrap();
        assert_eq!(
            (
                head_only.video_codec,
                head_only.audio_codec,
                head_only.width,
                head_only.height
            ),
            (full.video_codec, full.audio_codec, full.width, full.height)
        );
        // An ordinary MP4 (one moov, one mdat) has no fragment timeline.
        let plain = dir.path().join("plain.mp4");
        ffmpeg(&plain, &[]);
        assert_eq!(
            timeline(&std::fs::read(&plain).unwrap(), 4096).duration_ms(),
            None
        );
    }
}
