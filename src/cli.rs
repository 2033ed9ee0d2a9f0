//! What every Custody command-line tool shares: printing product output without panicking
//! when the reader went away, and telling that case apart from a real failure.
//!
//! Rust ignores SIGPIPE, so `println!` panics (exit 101) once `| head` has closed stdout.
//! The tools print with [`outln!`](crate::outln), which returns the write error, and
//! their `main` ends normally when [`is_closed_output`] says the error is only that.

use std::io;

/// Writes one line of product output to stdout, returning the I/O error instead of
/// panicking (a reader that stopped early, a full disk).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::writeln!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// Writes product output to stdout without a newline; see [`outln!`](crate::outln).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        ::std::write!(::std::io::stdout().lock(), $($arg)*)
    }};
}

/// Whether `err` is only stdout closed by its reader (`| head -n 1`): a normal end for a
/// command that prints, not a failure.
pub fn is_closed_output(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_anywhere_in_the_chain_is_a_closed_output_and_nothing_else_is() {
        let pipe = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_closed_output(&pipe.context("printing the report")));
        let full = anyhow::Error::new(io::Error::from(io::ErrorKind::StorageFull));
        assert!(!is_closed_output(&full));
        assert!(!is_closed_output(&anyhow::anyhow!("broken pipe")));
    }
}
