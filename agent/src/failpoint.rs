//! Fault injection for crash tests: when `CUSTODY_AGENT_CRASH_AT` names a point, the
//! process aborts there (as `kill -9` would), so a test can prove that a crash at every
//! step between hashing, signing, persisting and exporting loses nothing and forks nothing.
//! Unset in production: each check is one environment lookup on a path that runs once per
//! sealed record.

/// The environment variable naming the crash point.
pub const ENV: &str = "CUSTODY_AGENT_CRASH_AT";

/// Every point a test can crash at, in the order a seal passes them.
pub const POINTS: [&str; 5] = ["hashed", "signed", "inserted", "committed", "exported"];

/// Aborts the process if `point` is the configured crash point.
pub fn hit(point: &str) {
    if std::env::var(ENV).is_ok_and(|p| p == point) {
        std::process::abort();
    }
}
