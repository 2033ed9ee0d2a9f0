//! 编号与执法文书编号的规则一致: clip numbers follow the case's enforcement document
//! number. Parsing accepts the usual variants (〔〕 [] （） 【】 ［］ ﹝﹞, full-width
//! digits, stray spaces, full-width hyphens) and rendering gives one canonical form, so
//! `parse(render(x)) == x` and `render(parse(s))` is canonical for every accepted `s`.

use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::record::check_serial;

/// Oldest document year accepted (the People's Republic's first).
const MIN_YEAR: u16 = 1949;
/// Latest document year accepted.
const MAX_YEAR: u16 = 2199;
/// Most digits in a document serial or clip sequence.
const MAX_DIGITS: usize = 9;

/// An agency's numbering scheme, from its TOML template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberingScheme {
    /// 执法机关名称.
    pub agency: String,
    prefixes: Vec<String>,
    kinds: Vec<String>,
    act_types: std::collections::BTreeMap<String, String>,
    seq_width: usize,
    media: [(MediaKind, char); 3],
}

/// 媒体类别: what a clip holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// 视: video (with or without audio).
    Video,
    /// 音: audio only.
    Audio,
    /// 照: photo.
    Photo,
}

/// A document number `襄环罚〔2019〕75号`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocumentNumber {
    /// 机关代字, e.g. `襄环`.
    pub agency_code: String,
    /// 文书类别, e.g. `罚`.
    pub kind: String,
    /// 年份.
    pub year: u16,
    /// 序号 (no leading zeros when rendered).
    pub serial: u32,
}

impl fmt::Display for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}〔{}〕{}号",
            self.agency_code, self.kind, self.year, self.serial
        )
    }
}

/// A clip number `襄环罚〔2019〕75号-视-003`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClipNumber {
    /// The case's document number.
    pub document: DocumentNumber,
    /// 媒体类别.
    pub media: MediaKind,
    /// Per-case clip sequence, from 1.
    pub seq: u32,
}

/// A provisional number `<device>-<YYYYMMDD>-<seq>` for a clip recorded before its case
/// existed; `seq` is the device chain's seq, so it is unique per device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProvisionalNumber {
    /// Product serial of the device.
    pub device: String,
    /// Recording date (local).
    pub date: NaiveDate,
    /// The clip record's seq.
    pub seq: u64,
}

impl fmt::Display for ProvisionalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{:06}",
            self.device,
            self.date.format("%Y%m%d"),
            self.seq
        )
    }
}

/// A number that cannot be parsed, or a template that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}, at character {at}: {why}")]
pub struct NumberError {
    /// The input as given.
    pub input: String,
    /// 1-based character position in `input` (one past the end when input ran out).
    pub at: usize,
    /// What was expected there.
    pub why: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SchemeFile {
    agency: String,
    document: DocumentFile,
    clip: ClipFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DocumentFile {
    prefixes: Vec<String>,
    kinds: Vec<String>,
    #[serde(default)]
    act_types: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ClipFile {
    seq_width: usize,
    media: MediaFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaFile {
    video: char,
    audio: char,
    photo: char,
}

/// One character of normalised input, with its 1-based position in the original.
#[derive(Debug, Clone, Copy)]
struct Ch {
    c: char,
    at: usize,
}

/// Maps the accepted variants to the canonical characters and drops whitespace.
fn normalise(input: &str) -> Vec<Ch> {
    input
        .chars()
        .enumerate()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| {
            let c = match c {
                '０'..='９' => char::from_digit(c as u32 - '０' as u32, 10).unwrap_or(c),
                '[' | '（' | '(' | '【' | '［' | '﹝' | '〖' => '〔',
                ']' | '）' | ')' | '】' | '］' | '﹞' | '〗' => '〕',
                '－' | '‐' | '‑' | '–' | '—' | '﹣' => '-',
                _ => c,
            };
            Ch { c, at: i + 1 }
        })
        .collect()
}

/// A cursor over normalised input that reports errors against the original text.
struct Cursor<'a> {
    input: &'a str,
    chars: Vec<Ch>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            input,
            chars: normalise(input),
            pos: 0,
        }
    }

    fn at(&self) -> usize {
        self.chars
            .get(self.pos)
            .map_or(self.input.chars().count() + 1, |c| c.at)
    }

    fn err(&self, why: impl Into<String>) -> NumberError {
        NumberError {
            input: self.input.into(),
            at: self.at(),
            why: why.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|c| c.c)
    }

    fn expect(&mut self, want: char, what: &str) -> Result<(), NumberError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}")))
        }
    }

    fn digits(&mut self, what: &str) -> Result<(u64, usize), NumberError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let n = self.pos - start;
        if n == 0 || n > MAX_DIGITS {
            self.pos = start;
            return Err(self.err(format!("expected {what} (1 to {MAX_DIGITS} digits)")));
        }
        let text: String = self.chars[start..self.pos].iter().map(|c| c.c).collect();
        let value = text.parse().map_err(|_| self.err(format!("bad {what}")))?;
        Ok((value, n))
    }

    fn take_until(&mut self, stop: char) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| c != stop) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().map(|c| c.c).collect()
    }

    fn end(&self, what: &str) -> Result<(), NumberError> {
        match self.peek() {
            None => Ok(()),
            Some(c) => Err(self.err(format!("unexpected {c:?} after the {what}"))),
        }
    }
}

impl NumberingScheme {
    /// Reads a scheme from its TOML template (see `config/numbering.example.toml`).
    ///
    /// # Errors
    /// A message naming the bad key and line, or the rule a value breaks.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: SchemeFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let non_empty = |list: &[String], what: &str| {
            if list.is_empty()
                || list.iter().any(|s| {
                    s.trim().is_empty()
                        || s.chars().any(|c| {
                            c.is_ascii_digit() || c.is_whitespace() || c == '〔' || c == '-'
                        })
                })
            {
                Err(format!(
                    "{what}: give at least one, without digits, spaces, 〔 or -"
                ))
            } else {
                Ok(())
            }
        };
        non_empty(&file.document.prefixes, "document.prefixes")?;
        non_empty(&file.document.kinds, "document.kinds")?;
        if !(1..=6).contains(&file.clip.seq_width) {
            return Err("clip.seq-width: between 1 and 6".into());
        }
        if let Some(kind) = file
            .document
            .act_types
            .keys()
            .find(|k| !file.document.kinds.contains(k))
        {
            return Err(format!(
                "document.act-types: {kind:?} is not one of document.kinds"
            ));
        }
        let m = &file.clip.media;
        if m.video == m.audio || m.video == m.photo || m.audio == m.photo {
            return Err("clip.media: video, audio and photo need different characters".into());
        }
        Ok(Self {
            agency: file.agency,
            prefixes: file.document.prefixes,
            kinds: file.document.kinds,
            act_types: file.document.act_types,
            seq_width: file.clip.seq_width,
            media: [
                (MediaKind::Video, m.video),
                (MediaKind::Audio, m.audio),
                (MediaKind::Photo, m.photo),
            ],
        })
    }

    /// The agency codes (机关代字) this scheme accepts.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// The document kinds (文书类别) this scheme accepts.
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    /// The act type (执法行为类别, e.g. 行政处罚) the template gives a document kind, for
    /// the annual statistics; `None` when it gives none.
    pub fn act_type(&self, kind: &str) -> Option<&str> {
        self.act_types.get(kind).map(String::as_str)
    }

    /// Parses a document number in any accepted variant.
    ///
    /// # Errors
    /// [`NumberError`] with the position and what was expected there.
    pub fn parse_document(&self, input: &str) -> Result<DocumentNumber, NumberError> {
        let mut cur = Cursor::new(input);
        let doc = self.document(&mut cur)?;
        cur.end("document number")?;
        Ok(doc)
    }

    fn document(&self, cur: &mut Cursor<'_>) -> Result<DocumentNumber, NumberError> {
        let start = cur.pos;
        let head = cur.take_until('〔');
        if cur.peek().is_none() {
            cur.pos = start;
            return Err(cur.err("expected 〔year〕 after the agency code and document kind"));
        }
        let split = self
            .prefixes
            .iter()
            .filter(|p| head.starts_with(p.as_str()))
            .find_map(|p| {
                let kind = &head[p.len()..];
                self.kinds
                    .iter()
                    .any(|k| k == kind)
                    .then(|| (p.clone(), kind.to_owned()))
            });
        let Some((agency_code, kind)) = split else {
            let (offset, why) = match self.prefixes.iter().find(|p| head.starts_with(p.as_str())) {
                Some(p) => (
                    p.chars().count(),
                    format!(
                        "unknown document kind {:?} (known: {})",
                        &head[p.len()..],
                        self.kinds.join(" ")
                    ),
                ),
                None => (
                    0,
                    format!(
                        "{head:?} does not start with an agency code of this scheme ({})",
                        self.prefixes.join(" ")
                    ),
                ),
            };
            cur.pos = start + offset;
            return Err(cur.err(why));
        };
        cur.expect('〔', "〔")?;
        let year_at = cur.pos;
        let (year, n) = cur.digits("a four-digit year")?;
        let year = u16::try_from(year)
            .ok()
            .filter(|y| n == 4 && (MIN_YEAR..=MAX_YEAR).contains(y))
            .ok_or_else(|| {
                cur.pos = year_at;
                cur.err(format!(
                    "year must be four digits from {MIN_YEAR} to {MAX_YEAR}"
                ))
            })?;
        cur.expect('〕', "〕 after the year")?;
        let serial_at = cur.pos;
        let (serial, _) = cur.digits("the document serial")?;
        let serial = u32::try_from(serial)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| {
                cur.pos = serial_at;
                cur.err("the document serial starts at 1")
            })?;
        cur.expect('号', "号 after the serial")?;
        Ok(DocumentNumber {
            agency_code,
            kind,
            year,
            serial,
        })
    }

    /// Parses a clip number in any accepted variant.
    ///
    /// # Errors
    /// [`NumberError`] with the position and what was expected there.
    pub fn parse_clip(&self, input: &str) -> Result<ClipNumber, NumberError> {
        let mut cur = Cursor::new(input);
        let document = self.document(&mut cur)?;
        cur.expect('-', "- after the document number")?;
        let media = cur
            .peek()
            .and_then(|c| self.media.iter().find(|(_, m)| *m == c).map(|(k, _)| *k))
            .ok_or_else(|| {
                let known: String = self.media.iter().map(|(_, c)| *c).collect();
                cur.err(format!("expected a media kind, one of {known}"))
            })?;
        cur.pos += 1;
        cur.expect('-', "- after the media kind")?;
        let seq_at = cur.pos;
        let (seq, _) = cur.digits("the clip sequence")?;
        let seq = u32::try_from(seq).ok().filter(|&s| s > 0).ok_or_else(|| {
            cur.pos = seq_at;
            cur.err("the clip sequence starts at 1")
        })?;
        cur.end("clip number")?;
        Ok(ClipNumber {
            document,
            media,
            seq,
        })
    }

    /// The canonical text of a clip number.
    pub fn render_clip(&self, clip: &ClipNumber) -> String {
        let kind = self.media_char(clip.media);
        format!(
            "{}-{kind}-{:0width$}",
            clip.document,
            clip.seq,
            width = self.seq_width
        )
    }

    /// The character naming a media kind in this scheme.
    pub fn media_char(&self, kind: MediaKind) -> char {
        self.media
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or('视', |(_, c)| *c)
    }
}

impl ProvisionalNumber {
    /// Parses `<device>-<YYYYMMDD>-<seq>` (full-width digits and stray spaces accepted).
    ///
    /// # Errors
    /// [`NumberError`] with the position and what was expected there.
    pub fn parse(input: &str) -> Result<Self, NumberError> {
        let chars = normalise(input);
        let text: String = chars.iter().map(|c| c.c).collect();
        let err = |idx: usize, why: &str| NumberError {
            input: input.into(),
            at: chars.get(idx).map_or(input.chars().count() + 1, |c| c.at),
            why: why.into(),
        };
        let mut parts = text.rsplitn(3, '-');
        let (Some(seq), Some(date), Some(device)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err(0, "expected <device>-<YYYYMMDD>-<seq>"));
        };
        let device_len = device.chars().count();
        check_serial(device).map_err(|_| err(0, "the device serial is 1-32 of A-Z a-z 0-9 - _"))?;
        let date_at = device_len + 1;
        let date = (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()))
            .then(|| NaiveDate::parse_from_str(date, "%Y%m%d").ok())
            .flatten()
            .ok_or_else(|| err(date_at, "expected a date YYYYMMDD"))?;
        let seq_at = date_at + 9;
        let seq = (!seq.is_empty() && seq.len() <= 12 && seq.bytes().all(|b| b.is_ascii_digit()))
            .then(|| seq.parse::<u64>().ok())
            .flatten()
            .filter(|&s| s > 0)
            .ok_or_else(|| err(seq_at, "expected the record seq (digits, from 1)"))?;
        Ok(Self {
            device: device.into(),
            date,
            seq,
        })
    }
}

#[cfg(test)]
mod tests;
