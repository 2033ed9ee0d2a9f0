//! End-to-end tests: the `custody` binary and its formats used as a clerk or a court
//! would, against the real `openssl` CLI. A missing tool fails the test (scripts/test
//! installs them).

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test harness reports failure by panicking"
)]

mod openssl;
mod util;
mod verify_cli;
