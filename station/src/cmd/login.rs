//! Acting as a person: `--as LOGIN [--role ROLE] [--password-fd N]` on every command that
//! reads evidence or makes a copy. The password comes from the terminal (not echoed) or
//! a file descriptor, never from argv.

use std::io::{BufRead as _, Write as _};

use anyhow::{Context as _, bail};
use custody::Role;
use custody_station::{Actor, Credential, Station};

/// Who runs the command.
#[derive(clap::Args, Debug, Clone)]
pub struct LoginArgs {
    /// The person acting (their login; required). Their password is asked on the
    /// terminal, or read from --password-fd.
    #[arg(long = "as", value_name = "LOGIN")]
    pub login: Option<String>,
    /// The role to act under, when the person holds several.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Read the password from this open file descriptor (its first line): 0 for stdin, or
    /// e.g. 3 with `3<file`.
    #[arg(long, value_name = "FD")]
    pub password_fd: Option<u32>,
}

/// Logs the person in (their login, or its refusal, is an access event).
///
/// # Errors
/// No password could be read, or the login is refused.
pub fn login(station: &Station, args: &LoginArgs) -> anyhow::Result<Actor> {
    let Some(login) = &args.login else {
        bail!("this command reads evidence: say who you are (--as LOGIN)");
    };
    let password = read_secret(args.password_fd, &format!("{login} 的密码: "))?;
    station.login(login, Credential::Password(&password), args.role)
}

/// A secret from file descriptor `fd` (its first line), or from the terminal with echo
/// off.
///
/// # Errors
/// Nothing readable, or no terminal and no descriptor.
pub fn read_secret(fd: Option<u32>, prompt: &str) -> anyhow::Result<String> {
    let line = match fd {
        Some(fd) => {
            let file = std::fs::File::open(format!("/dev/fd/{fd}"))
                .with_context(|| format!("cannot read the password from file descriptor {fd}"))?;
            let mut line = String::new();
            std::io::BufReader::new(file).read_line(&mut line)?;
            line
        }
        None => prompt_tty(prompt)?,
    };
    let secret = line.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        bail!("no password given");
    }
    Ok(secret)
}

/// Asks on the controlling terminal with echo off (restored however reading ends).
fn prompt_tty(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask the password on: give --password-fd")?;
    let saved = tcgetattr(&tty).context("/dev/tty is not a terminal")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet)?;
    let read = (|| -> std::io::Result<String> {
        tty.write_all(prompt.as_bytes())?;
        tty.flush()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(line)
    })();
    tcsetattr(&tty, SetArg::TCSANOW, &saved)?;
    let _ = tty.write_all(b"\n");
    Ok(read?)
}
