//! NMEA 0183 from the GNSS receiver, passed through by the MCU: GGA, RMC, GNS and ZDA
//! from the talkers GP (GPS), GN (multi-constellation), BD and GB (BeiDou), GL (GLONASS)
//! and GA (Galileo). Pure functions over bytes: checksums verified, dirty, glued and
//! truncated lines dropped and counted, never a panic.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Longest line kept, in bytes. NMEA allows 82; some BeiDou receivers send a little more.
pub const MAX_LINE: usize = 256;

/// Who sent a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Talker {
    /// GPS.
    Gp,
    /// Combined GNSS.
    Gn,
    /// BeiDou (Chinese national standard talker).
    Bd,
    /// BeiDou (NMEA 4.11 talker).
    Gb,
    /// GLONASS.
    Gl,
    /// Galileo.
    Ga,
}

/// How good a position is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FixMode {
    /// No position.
    NoFix,
    /// Latitude and longitude.
    TwoD,
    /// With altitude.
    ThreeD,
}

/// What one sentence says about position and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// The sentence's talker.
    pub talker: Talker,
    /// `GGA`, `RMC`, `GNS`.
    pub kind: &'static str,
    /// UTC time of day.
    pub time: Option<NaiveTime>,
    /// UTC date (RMC only).
    pub date: Option<NaiveDate>,
    /// Position quality.
    pub mode: FixMode,
    /// Latitude in degrees, north positive (absent without a fix).
    pub lat: Option<f64>,
    /// Longitude in degrees, east positive.
    pub lon: Option<f64>,
    /// Altitude above mean sea level in metres.
    pub altitude_m: Option<f64>,
    /// Satellites used.
    pub satellites: Option<u8>,
    /// Horizontal dilution of precision.
    pub hdop: Option<f64>,
}

/// A sentence this parser understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Sentence {
    /// GGA, RMC or GNS: a position report.
    Fix(Fix),
    /// ZDA: UTC date and time.
    Zda {
        /// The talker.
        talker: Talker,
        /// UTC date and time.
        utc: NaiveDateTime,
    },
}

/// Why a line was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NmeaError {
    /// The checksum after `*` does not match.
    #[error("checksum mismatch: sentence says {stated:02X}, computed {computed:02X}")]
    Checksum {
        /// From the sentence.
        stated: u8,
        /// Computed over the bytes between `$` and `*`.
        computed: u8,
    },
    /// Not a whole sentence: no `$`, no `*hh`, two sentences glued, non-ASCII bytes.
    #[error("not a whole sentence: {0}")]
    Dirty(&'static str),
    /// A field of a known sentence is not what it should be.
    #[error("{kind} field {field}: {why}")]
    Field {
        /// Sentence type.
        kind: &'static str,
        /// 1-based field number.
        field: usize,
        /// What is wrong.
        why: &'static str,
    },
}

/// Parses one line (without its line ending). `Ok(None)` for a valid sentence of a type or
/// talker this parser does not use (GSA, GSV, proprietary `$P…`).
///
/// # Errors
/// [`NmeaError`] for a line that must be dropped.
pub fn parse_line(line: &[u8]) -> Result<Option<Sentence>, NmeaError> {
    let line = line.trim_ascii();
    let body = line
        .strip_prefix(b"$")
        .ok_or(NmeaError::Dirty("does not start with $"))?;
    if !line.is_ascii() || line.contains(&0) {
        return Err(NmeaError::Dirty("bytes that are not printable ASCII"));
    }
    if body.contains(&b'$') {
        return Err(NmeaError::Dirty("two sentences glued together"));
    }
    let star = body
        .iter()
        .rposition(|&b| b == b'*')
        .ok_or(NmeaError::Dirty("no *checksum"))?;
    let (data, sum) = (&body[..star], &body[star + 1..]);
    let stated = std::str::from_utf8(sum)
        .ok()
        .filter(|s| s.len() == 2)
        .and_then(|s| u8::from_str_radix(s, 16).ok())
        .ok_or(NmeaError::Dirty("checksum is not two hex digits"))?;
    let computed = data.iter().fold(0u8, |acc, b| acc ^ b);
    if stated != computed {
        return Err(NmeaError::Checksum { stated, computed });
    }
    let data = std::str::from_utf8(data).map_err(|_| NmeaError::Dirty("not ASCII"))?;
    let mut fields = data.split(',');
    let address = fields.next().unwrap_or_default();
    if address.len() != 5 {
        return Ok(None); // proprietary ($PSRF…) or malformed address: not ours
    }
    let talker = match &address[..2] {
        "GP" => Talker::Gp,
        "GN" => Talker::Gn,
        "BD" => Talker::Bd,
        "GB" => Talker::Gb,
        "GL" => Talker::Gl,
        "GA" => Talker::Ga,
        _ => return Ok(None),
    };
    let f: Vec<&str> = fields.collect();
    match &address[2..] {
        "GGA" => gga(talker, &f).map(Some),
        "RMC" => rmc(talker, &f).map(Some),
        "GNS" => gns(talker, &f).map(Some),
        "ZDA" => zda(talker, &f).map(Some),
        _ => Ok(None),
    }
}

fn field<'a>(f: &[&'a str], i: usize) -> &'a str {
    f.get(i).copied().unwrap_or_default()
}

fn opt<T: std::str::FromStr>(
    kind: &'static str,
    f: &[&str],
    i: usize,
    why: &'static str,
) -> Result<Option<T>, NmeaError> {
    match field(f, i) {
        "" => Ok(None),
        // Plain decimals only: Rust's number parsers also take `NaN`, `inf` and `1e9`.
        s if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+')) =>
        {
            Err(NmeaError::Field {
                kind,
                field: i + 1,
                why,
            })
        }
        s => s.parse().map(Some).map_err(|_| NmeaError::Field {
            kind,
            field: i + 1,
            why,
        }),
    }
}

fn time(kind: &'static str, f: &[&str], i: usize) -> Result<Option<NaiveTime>, NmeaError> {
    let s = field(f, i);
    if s.is_empty() {
        return Ok(None);
    }
    let bad = NmeaError::Field {
        kind,
        field: i + 1,
        why: "time is not hhmmss[.sss]",
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    if hms.len() != 6
        || !hms.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad);
    }
    let n = |r: std::ops::Range<usize>| hms[r].parse::<u32>().unwrap_or(99);
    let nanos = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}")[..9].parse().unwrap_or(0)
    };
    NaiveTime::from_hms_nano_opt(n(0..2), n(2..4), n(4..6), nanos)
        .map(Some)
        .ok_or(bad)
}

/// `ddmm.mmmm` + hemisphere to signed degrees.
fn coordinate(
    kind: &'static str,
    f: &[&str],
    i: usize,
    deg_digits: usize,
) -> Result<Option<f64>, NmeaError> {
    let (value, hemi) = (field(f, i), field(f, i + 1));
    if value.is_empty() && hemi.is_empty() {
        return Ok(None);
    }
    let bad = NmeaError::Field {
        kind,
        field: i + 1,
        why: "coordinate is not d…dmm.mmmm with N/S/E/W",
    };
    let int_len = value.find('.').unwrap_or(value.len());
    if int_len != deg_digits + 2 || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad);
    }
    let degrees: f64 = value[..deg_digits].parse().map_err(|_| bad.clone())?;
    let minutes: f64 = value[deg_digits..].parse().map_err(|_| bad.clone())?;
    if minutes >= 60.0 {
        return Err(bad);
    }
    let v = degrees + minutes / 60.0;
    let (limit, sign) = match (deg_digits, hemi) {
        (2, "N") | (3, "E") => (if deg_digits == 2 { 90.0 } else { 180.0 }, 1.0),
        (2, "S") | (3, "W") => (if deg_digits == 2 { 90.0 } else { 180.0 }, -1.0),
        _ => return Err(bad),
    };
    if v > limit {
        return Err(bad);
    }
    Ok(Some(sign * v))
}

fn position(
    kind: &'static str,
    f: &[&str],
    at: usize,
) -> Result<(Option<f64>, Option<f64>), NmeaError> {
    let lat = coordinate(kind, f, at, 2)?;
    let lon = coordinate(kind, f, at + 2, 3)?;
    Ok(if lat.is_some() && lon.is_some() {
        (lat, lon)
    } else {
        (None, None)
    })
}

/// Refuses a sentence with fewer than `n` fields (cut off in transit).
fn need(kind: &'static str, f: &[&str], n: usize) -> Result<(), NmeaError> {
    if f.len() < n {
        return Err(NmeaError::Field {
            kind,
            field: f.len() + 1,
            why: "too few fields (truncated)",
        });
    }
    Ok(())
}

/// GGA and GNS share their layout from the time to the altitude (fields 1 to 9); they
/// differ only in how field 6 says whether there is a fix.
fn position_fix(
    talker: Talker,
    kind: &'static str,
    f: &[&str],
    fixed: bool,
) -> Result<Sentence, NmeaError> {
    let (lat, lon) = position(kind, f, 1)?;
    let altitude_m = opt(kind, f, 8, "altitude is not a number")?;
    let mode = match (fixed, lat, altitude_m) {
        (false, _, _) | (_, None, _) => FixMode::NoFix,
        (true, Some(_), Some(_)) => FixMode::ThreeD,
        (true, Some(_), None) => FixMode::TwoD,
    };
    Ok(Sentence::Fix(Fix {
        talker,
        kind,
        time: time(kind, f, 0)?,
        date: None,
        mode,
        lat: lat.filter(|_| mode != FixMode::NoFix),
        lon: lon.filter(|_| mode != FixMode::NoFix),
        altitude_m,
        satellites: opt(kind, f, 6, "satellite count is not a number")?,
        hdop: opt(kind, f, 7, "HDOP is not a number")?,
    }))
}

fn gga(talker: Talker, f: &[&str]) -> Result<Sentence, NmeaError> {
    const K: &str = "GGA";
    need(K, f, 14)?;
    let quality: u8 = opt(K, f, 5, "fix quality is not a number")?.unwrap_or(0);
    position_fix(talker, K, f, quality != 0)
}

fn rmc(talker: Talker, f: &[&str]) -> Result<Sentence, NmeaError> {
    const K: &str = "RMC";
    need(K, f, 11)?;
    let valid = match field(f, 1) {
        "A" => true,
        "V" => false,
        _ => {
            return Err(NmeaError::Field {
                kind: K,
                field: 2,
                why: "status is not A or V",
            });
        }
    };
    let (lat, lon) = position(K, f, 2)?;
    let date = match field(f, 8) {
        "" => None,
        d if d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()) => {
            let n = |r: std::ops::Range<usize>| d[r].parse::<u32>().unwrap_or(0);
            // Two-digit years: 80..99 are 1980s/90s receivers, the rest this century.
            let year = i32::try_from(n(4..6)).unwrap_or(0);
            let year = if year >= 80 { 1900 + year } else { 2000 + year };
            Some(
                NaiveDate::from_ymd_opt(year, n(2..4), n(0..2)).ok_or(NmeaError::Field {
                    kind: K,
                    field: 9,
                    why: "no such date",
                })?,
            )
        }
        _ => {
            return Err(NmeaError::Field {
                kind: K,
                field: 9,
                why: "date is not ddmmyy",
            });
        }
    };
    let mode = if valid && lat.is_some() {
        FixMode::TwoD
    } else {
        FixMode::NoFix
    };
    Ok(Sentence::Fix(Fix {
        talker,
        kind: K,
        time: time(K, f, 0)?,
        date,
        mode,
        lat: lat.filter(|_| valid),
        lon: lon.filter(|_| valid),
        altitude_m: None,
        satellites: None,
        hdop: None,
    }))
}

fn gns(talker: Talker, f: &[&str]) -> Result<Sentence, NmeaError> {
    const K: &str = "GNS";
    need(K, f, 12)?;
    let modes = field(f, 5);
    if modes.is_empty() || !modes.bytes().all(|b| b"NADPRFEMS".contains(&b)) {
        return Err(NmeaError::Field {
            kind: K,
            field: 6,
            why: "mode indicator is not one of N A D P R F E M S",
        });
    }
    position_fix(talker, K, f, modes.bytes().any(|b| b != b'N'))
}

fn zda(talker: Talker, f: &[&str]) -> Result<Sentence, NmeaError> {
    const K: &str = "ZDA";
    need(K, f, 6)?;
    let utc_time = time(K, f, 0)?.ok_or(NmeaError::Field {
        kind: K,
        field: 1,
        why: "no time",
    })?;
    let (day, month, year): (Option<u32>, Option<u32>, Option<i32>) = (
        opt(K, f, 1, "bad day")?,
        opt(K, f, 2, "bad month")?,
        opt(K, f, 3, "bad year")?,
    );
    let date = match (year, month, day) {
        (Some(year), Some(month), Some(day)) => NaiveDate::from_ymd_opt(year, month, day),
        _ => None,
    }
    .ok_or(NmeaError::Field {
        kind: K,
        field: 2,
        why: "no valid date",
    })?;
    Ok(Sentence::Zda {
        talker,
        utc: date.and_time(utc_time),
    })
}

/// Counts of what a [`NmeaReader`] dropped and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NmeaStats {
    /// Sentences parsed and used.
    pub accepted: u64,
    /// Valid sentences of types not used here.
    pub ignored: u64,
    /// Lines dropped for a wrong checksum.
    pub bad_checksum: u64,
    /// Lines dropped as dirty, glued, truncated, overlong or with bad fields.
    pub malformed: u64,
}

/// Splits a byte stream into lines (bounded) and parses them, counting what it drops.
#[derive(Debug, Default)]
pub struct NmeaReader {
    line: Vec<u8>,
    overlong: bool,
    stats: NmeaStats,
}

impl NmeaReader {
    /// A reader with empty counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was dropped and kept so far.
    pub fn stats(&self) -> NmeaStats {
        self.stats
    }

    /// Feeds bytes; returns the sentences completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Sentence> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if self.overlong {
                    self.stats.malformed += 1;
                } else if !self.line.trim_ascii().is_empty() {
                    match parse_line(&self.line) {
                        Ok(Some(s)) => {
                            self.stats.accepted += 1;
                            out.push(s);
                        }
                        Ok(None) => self.stats.ignored += 1,
                        Err(NmeaError::Checksum { .. }) => self.stats.bad_checksum += 1,
                        Err(_) => self.stats.malformed += 1,
                    }
                }
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.overlong = true;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
