//! Vendor file-name patterns, e.g. `{serial}_{yyyy}{mm}{dd}_{HH}{MM}{SS}_{seq:4}.MP4`:
//! rendered by the recorder simulator, matched by the station to read a legacy clip's
//! recording time and number from its name.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Serial,
    /// A fixed-width number: year, month, ... or the clip sequence.
    Number(Field, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Seq,
}

/// A parsed file-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNamePattern {
    text: String,
    tokens: Vec<Token>,
}

/// What a file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameParts {
    /// Device serial, if the pattern has one.
    pub serial: Option<String>,
    /// Recording start (device local time).
    pub start: NaiveDateTime,
    /// Clip sequence.
    pub seq: u32,
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file pattern {pattern:?}: {why}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong.
    pub why: String,
}

impl FromStr for FileNamePattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, PatternError> {
        let err = |why: &str| PatternError {
            pattern: text.into(),
            why: why.into(),
        };
        let mut tokens = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (name, tail) = after.split_once('}').ok_or_else(|| err("unclosed {"))?;
                let token = match name {
                    "serial" => Token::Serial,
                    "yyyy" => Token::Number(Field::Year, 4),
                    "mm" => Token::Number(Field::Month, 2),
                    "dd" => Token::Number(Field::Day, 2),
                    "HH" => Token::Number(Field::Hour, 2),
                    "MM" => Token::Number(Field::Minute, 2),
                    "SS" => Token::Number(Field::Second, 2),
                    _ => match name.strip_prefix("seq:").and_then(|w| w.parse().ok()) {
                        Some(w @ 1..=9) => Token::Number(Field::Seq, w),
                        _ => {
                            return Err(err(&format!(
                                "unknown placeholder {{{name}}}; known: serial yyyy mm dd HH MM SS seq:N"
                            )));
                        }
                    },
                };
                tokens.push(token);
                rest = tail;
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if literal.contains(['}', '/', '\\']) {
                    return Err(err("a literal part contains }, / or \\"));
                }
                tokens.push(Token::Literal(literal.into()));
                rest = &rest[end..];
            }
        }
        for field in [
            Field::Year,
            Field::Month,
            Field::Day,
            Field::Hour,
            Field::Minute,
            Field::Second,
            Field::Seq,
        ] {
            if tokens
                .iter()
                .filter(|t| matches!(t, Token::Number(f, _) if *f == field))
                .count()
                != 1
            {
                return Err(err(
                    "needs each of {yyyy} {mm} {dd} {HH} {MM} {SS} {seq:N} exactly once",
                ));
            }
        }
        for pair in tokens.windows(2) {
            if pair[0] == Token::Serial && !matches!(pair[1], Token::Literal(_)) {
                return Err(err(
                    "{serial} must be followed by literal text, or end the pattern",
                ));
            }
        }
        Ok(Self {
            text: text.into(),
            tokens,
        })
    }
}

impl fmt::Display for FileNamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FileNamePattern {
    /// The file name for a clip.
    pub fn render(&self, serial: &str, start: NaiveDateTime, seq: u32) -> String {
        use chrono::{Datelike, Timelike};
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(s) => out.push_str(s),
                Token::Serial => out.push_str(serial),
                Token::Number(field, width) => {
                    let value = match field {
                        Field::Year => i64::from(start.year()),
                        Field::Month => i64::from(start.month()),
                        Field::Day => i64::from(start.day()),
                        Field::Hour => i64::from(start.hour()),
                        Field::Minute => i64::from(start.minute()),
                        Field::Second => i64::from(start.second()),
                        Field::Seq => i64::from(seq),
                    };
                    let _ = write!(out, "{value:0width$}");
                }
            }
        }
        out
    }

    /// Reads a file name; `None` when it does not follow the pattern or names no real time.
    pub fn parse_name(&self, name: &str) -> Option<NameParts> {
        let (mut rest, mut serial) = (name, None);
        let mut v = [0u32; 7];
        for (i, token) in self.tokens.iter().enumerate() {
            match token {
                Token::Literal(s) => rest = rest.strip_prefix(s.as_str())?,
                Token::Serial => {
                    let end = match self.tokens.get(i + 1) {
                        Some(Token::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let s = &rest[..end];
                    if s.is_empty()
                        || !s
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        return None;
                    }
                    serial = Some(s.to_owned());
                    rest = &rest[end..];
                }
                Token::Number(field, width) => {
                    let digits = rest.get(..*width)?;
                    if !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    v[*field as usize] = digits.parse().ok()?;
                    rest = &rest[*width..];
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let [year, month, day, hour, minute, second, seq] = v;
        let start = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
            .and_hms_opt(hour, minute, second)?;
        Some(NameParts { serial, start, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn names_render_and_parse_back() {
        let p: FileNamePattern = "{serial}_{yyyy}{mm}{dd}_{HH}{MM}{SS}_{seq:4}.MP4"
            .parse()
            .unwrap();
        let name = p.render("A100001", at("2026-11-20 09:05:07"), 12);
        assert_eq!(name, "A100001_20261120_090507_0012.MP4");
        let parts = p.parse_name(&name).unwrap();
        assert_eq!(
            parts,
            NameParts {
                serial: Some("A100001".into()),
                start: at("2026-11-20 09:05:07"),
                seq: 12
            }
        );
    }

    #[test]
    fn a_serial_after_the_sequence_is_read_up_to_the_next_literal() {
        let p: FileNamePattern = "{yyyy}_{mm}{dd}_{HH}{MM}{SS}_{seq:3}{serial}.MOV"
            .parse()
            .unwrap();
        let parts = p.parse_name("2026_1120_090507_007LEG0042.MOV").unwrap();
        assert_eq!((parts.serial.as_deref(), parts.seq), (Some("LEG0042"), 7));
    }

    #[test]
    fn names_that_do_not_fit_are_none() {
        let p: FileNamePattern = "VID_{yyyy}{mm}{dd}_{HH}{MM}{SS}_{seq:3}.mp4"
            .parse()
            .unwrap();
        for bad in [
            "VID_20261120_090507_001.mp4.part",
            "VID_20261332_090507_001.mp4",
            "IMG_20261120_090507_001.mp4",
            "VID_2026112_0090507_001.mp4",
            "",
        ] {
            assert_eq!(p.parse_name(bad), None, "{bad}");
        }
        assert!(p.parse_name("VID_20261120_090507_001.mp4").is_some());
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "{serial}.MP4",
            "{yyyy}{mm}{dd}{HH}{MM}{SS}{seq:4}{serial}{seq:2}",
            "{yyyy}{mm}{dd}{HH}{MM}{SS}{seq:0}",
            "{colour}",
            "a/{yyyy}{mm}{dd}{HH}{MM}{SS}{seq:2}",
            "{serial}{yyyy}{mm}{dd}{HH}{MM}{SS}{seq:2}",
        ] {
            assert!(bad.parse::<FileNamePattern>().is_err(), "{bad}");
        }
    }
}
