//! Scenario scripts for the simulator: one step per line, `#` starts a comment.
//!
//! ```text
//! record              # the officer presses record
//! wait 5s             # 5s, 300ms, 2m
//! mark                # 重点标记
//! stop
//! clock-jump -30s     # the RTC jumps (also +2m)
//! garbage             # noise on the line (or: garbage some text)
//! reset-mid-frame
//! unplug / replug
//! storage-full
//! dock / undock
//! ```

use std::time::Duration;

use super::Control;

/// One step of a scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// Inject this into the simulator.
    Do(Control),
    /// Let time pass.
    Wait(Duration),
}

/// A script line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// Parses a duration like `5s`, `300ms`, `2m`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// Parses a whole script.
///
/// # Errors
/// [`ScriptError`] naming the first bad line.
pub fn parse_script(text: &str) -> Result<Vec<Step>, ScriptError> {
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let err = |why: &str| ScriptError {
            line: i + 1,
            why: why.into(),
        };
        let (word, arg) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(w, a)| (w, a.trim()));
        let no_arg = |c: Control| {
            if arg.is_empty() {
                Ok(Step::Do(c))
            } else {
                Err(err(&format!("{word} takes no argument")))
            }
        };
        let step = match word {
            "record" => no_arg(Control::StartRecording)?,
            "stop" => no_arg(Control::StopRecording)?,
            "mark" => no_arg(Control::KeyMark)?,
            "dock" => no_arg(Control::Dock)?,
            "undock" => no_arg(Control::Undock)?,
            "reset-mid-frame" => no_arg(Control::ResetMidFrame)?,
            "unplug" => no_arg(Control::Unplug)?,
            "replug" => no_arg(Control::Replug)?,
            "storage-full" => no_arg(Control::StorageFull)?,
            "garbage" => Step::Do(Control::Garbage(if arg.is_empty() {
                b"\x00\xa5\xffnoise\r\n".to_vec()
            } else {
                arg.as_bytes().to_vec()
            })),
            "wait" => Step::Wait(
                duration(arg).ok_or_else(|| err("wait needs a duration like 5s, 300ms or 2m"))?,
            ),
            "clock-jump" => {
                let (sign, rest) = match arg.strip_prefix('-') {
                    Some(rest) => (-1, rest),
                    None => (1, arg.strip_prefix('+').unwrap_or(arg)),
                };
                let d = duration(rest)
                    .ok_or_else(|| err("clock-jump needs a duration like -30s or +2m"))?;
                let ms = i64::try_from(d.as_millis()).map_err(|_| err("clock jump too large"))?;
                Step::Do(Control::ClockJump(sign * ms))
            }
            other => return Err(err(&format!("unknown step {other:?}"))),
        };
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shift_parses() {
        let steps = parse_script(
            "# shift\nrecord\nwait 2s\nmark # important\nwait 300ms\nstop\nclock-jump -30s\ndock\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 7);
        assert!(matches!(steps[1], Step::Wait(d) if d == Duration::from_secs(2)));
        assert!(matches!(steps[5], Step::Do(Control::ClockJump(-30_000))));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_script("record\nfly\n").unwrap_err(),
            ScriptError {
                line: 2,
                why: "unknown step \"fly\"".into()
            }
        );
        assert_eq!(parse_script("wait soon").unwrap_err().line, 1);
        assert!(parse_script("record now").is_err());
        assert!(parse_script("clock-jump 5x").is_err());
    }
}
