//! NMEA tests: the real receiver captures in `tests/data/nmea` (override with
//! `NMEA_TESTDATA`) against gpsd's own `.chk` output, plus hand-made edge cases.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn testdata() -> PathBuf {
    std::env::var_os("NMEA_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nmea"),
        PathBuf::from,
    )
}

/// gpsd headers (`#…`) are not NMEA.
fn strip_comments(bytes: &[u8]) -> Vec<u8> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"#"))
        .flatten()
        .copied()
        .collect()
}

/// `$GNGGA,…` and the like: the sentences that carry a position.
fn is_fix_sentence(line: &str) -> bool {
    line.len() > 6 && ["GGA", "RMC", "GNS"].contains(&&line[3..6])
}

#[test]
fn fixes_agree_with_gpsd_on_every_capture() {
    let dir = testdata();
    let mut logs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.retain(|p| p.with_extension("log.chk").exists());
    logs.sort();
    assert!(
        !logs.is_empty(),
        "no *.log with .chk under {}",
        dir.display()
    );
    let mut compared = 0;
    for log in &logs {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        // Our reading of the raw capture, sentence text -> fix.
        let raw = fs::read(log).unwrap();
        let mut ours: HashMap<String, Fix> = HashMap::new();
        for line in strip_comments(&raw).split(|&b| b == b'\n') {
            if let Ok(Some(Sentence::Fix(fix))) = parse_line(line) {
                ours.insert(String::from_utf8_lossy(line.trim_ascii()).into_owned(), fix);
            }
        }
        // gpsd's: each echoed sentence, then the TPV report it produced (if any).
        let chk = fs::read_to_string(log.with_extension("log.chk")).unwrap();
        let lines: Vec<&str> = chk.lines().map(str::trim).collect();
        let mut gpsd_accepted = 0;
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with('$') || !is_fix_sentence(line) {
                continue;
            }
            gpsd_accepted += 1;
            let fix = ours
                .get(*line)
                .unwrap_or_else(|| panic!("{name}: gpsd accepted {line}, we did not"));
            let Some(tpv) = lines
                .get(i + 1)
                .filter(|l| l.starts_with("{\"class\":\"TPV\""))
            else {
                continue;
            };
            let tpv: serde_json::Value = serde_json::from_str(tpv).unwrap();
            let mode = tpv["mode"].as_u64().unwrap();
            match tpv["lat"].as_f64() {
                None => assert_eq!(fix.mode, FixMode::NoFix, "{name}: {line}: gpsd has no fix"),
                Some(lat) => {
                    let lon = tpv["lon"].as_f64().unwrap();
                    assert!(
                        (fix.lat.unwrap() - lat).abs() < 1e-8,
                        "{name}: {line}: lat {:?} vs gpsd {lat}",
                        fix.lat
                    );
                    assert!(
                        (fix.lon.unwrap() - lon).abs() < 1e-8,
                        "{name}: {line}: lon {:?} vs gpsd {lon}",
                        fix.lon
                    );
                    // GGA/GNS carry the fix dimension themselves; an RMC only says "a fix".
                    if fix.kind == "RMC" {
                        assert!(mode >= 2 && fix.mode >= FixMode::TwoD, "{name}: {line}");
                    } else {
                        let want = if mode == 3 {
                            FixMode::ThreeD
                        } else {
                            FixMode::TwoD
                        };
                        assert_eq!(fix.mode, want, "{name}: {line}: gpsd mode {mode}");
                    }
                    compared += 1;
                }
            }
        }
        assert_eq!(
            ours.len(),
            gpsd_accepted,
            "{name}: we accepted sentences gpsd dropped"
        );
    }
    assert!(compared > 20, "only {compared} fixes compared");
}

#[test]
fn the_dirty_lines_in_the_captures_are_dropped_and_counted() {
    let read = |name: &str| {
        let mut r = NmeaReader::new();
        r.push(&strip_comments(&fs::read(testdata().join(name)).unwrap()));
        r.stats()
    };
    // firefly-II: every GGA has a wrong checksum; RMC and ZDA are fine.
    let s = read("firefly-II.log");
    assert_eq!((s.accepted, s.bad_checksum), (46, 23));
    // triton400: one GGA cut off with a GLL glued on.
    let s = read("triton400.log");
    assert_eq!(s.malformed, 1);
    // beidou-bd: the leading space is tolerated, nothing is lost.
    let s = read("beidou-bd.log");
    assert_eq!((s.bad_checksum, s.malformed), (0, 0));
}

#[test]
fn beidou_talkers_and_gns_are_read() {
    let line = b"$GNGNS,074158.799,3114.8953,N,12135.2439,E,ANNA,07,1.1,198.5,8.3,,0000*51";
    let Some(Sentence::Fix(fix)) = parse_line(line).unwrap() else {
        panic!()
    };
    assert_eq!(
        (fix.talker, fix.mode, fix.satellites),
        (Talker::Gn, FixMode::ThreeD, Some(7))
    );
    assert!((fix.lat.unwrap() - 31.248_255).abs() < 1e-6);
    let rmc = with_checksum("GBRMC,074157.799,A,3114.8902,N,12135.2443,E,0.32,4.94,250215,,,A");
    let Some(Sentence::Fix(fix)) = parse_line(rmc.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (fix.talker, fix.date),
        (Talker::Gb, NaiveDate::from_ymd_opt(2015, 2, 25))
    );
}

#[test]
fn zda_gives_utc_date_and_time() {
    let Some(Sentence::Zda { utc, .. }) =
        parse_line(b"$GPZDA,005947.00,08,07,2010,+00,00*4E").unwrap()
    else {
        panic!()
    };
    assert_eq!(utc.to_string(), "2010-07-08 00:59:47");
}

fn with_checksum(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("${body}*{sum:02X}")
}

#[test]
fn malformed_fields_and_lines_are_errors() {
    for bad in [
        with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M"),
        with_checksum("GPGGA,123519,48A7.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        with_checksum("GPGGA,123519,4807.038,Q,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        with_checksum("GPGGA,126519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        // Rust's float parser takes these; an NMEA number never has them.
        with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,NaN,545.4,M,46.9,M,,"),
        with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,inf,M,46.9,M,,"),
        with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,1e308,M,46.9,M,,"),
        with_checksum("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"),
        with_checksum("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W"),
        "GPGGA,123519*00".to_owned(),
        "$GPGGA,123519".to_owned(),
        "$GPGGA,1*2$GPRMC*00".to_owned(),
    ] {
        assert!(parse_line(bad.as_bytes()).is_err(), "{bad}");
    }
    let good = with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,");
    assert!(matches!(
        parse_line(good.as_bytes()),
        Ok(Some(Sentence::Fix(_)))
    ));
    assert_eq!(parse_line(b"$PSRFEPE,074150.799,V,,,,,*23"), Ok(None));
}

#[test]
fn an_overlong_line_is_dropped_without_growing_the_buffer() {
    let mut r = NmeaReader::new();
    r.push(&vec![b'A'; 100_000]);
    r.push(b"\n$GPZDA,005947.00,08,07,2010,+00,00*4E\r\n");
    assert_eq!((r.stats().malformed, r.stats().accepted), (1, 1));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut r = NmeaReader::new();
        let _ = r.push(&bytes);
        let _ = parse_line(&bytes);
    }

    #[test]
    fn any_checksummed_field_soup_never_panics(fields in proptest::collection::vec("[0-9A-Z.]{0,9}", 0..16), kind in prop::sample::select(vec!["GPGGA", "GNRMC", "BDGNS", "GPZDA"])) {
        let line = with_checksum(&format!("{kind},{}", fields.join(",")));
        let _ = parse_line(line.as_bytes());
    }
}
