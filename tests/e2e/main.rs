//! End-to-end tests: the `custody` binary and its formats used as a clerk or a court
//! would, against the real `openssl` CLI; the whole dock path with the real binaries
//! (`recorder-sim`, `custody-agent run`, `custody-station serve`); and a terminal's HTTPS
//! upload to the station. Everything that needs both the agent and the station lives
//! here, never in either crate. A missing tool fails the test (scripts/test installs
//! them).

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::too_many_lines,
    reason = "a test harness reports failure by panicking, and tells its story in order"
)]

mod disc;
mod dock;
mod export;
mod openssl;
mod power;
mod upload;
mod util;
mod verify_cli;
mod web_tls;
