//! End-to-end tests: the `custody` binary run as a user runs it.
