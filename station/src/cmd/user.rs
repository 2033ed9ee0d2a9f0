//! `custody-station user add|role|disable|enable|passwd|list`: the station's people, their
//! departments and roles. Administering accounts reads no evidence: these run as the
//! station's administrator, passwords from the terminal or a file descriptor.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use custody::Role;
use custody_station::NewPerson;

use super::login::read_secret;

/// `user` actions.
#[derive(Subcommand)]
pub enum Action {
    /// Add a person with their department and roles, and set their password.
    Add {
        /// Login name (letters, digits, '.', '-', '_').
        login: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// 部门, e.g. 治安大队.
        #[arg(long)]
        department: String,
        /// 执法证号 (an officer's, as device records name them).
        #[arg(long)]
        badge: Option<String>,
        /// A role (repeat for several).
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<Role>,
        /// Read the password from this file descriptor instead of the terminal.
        #[arg(long, value_name = "FD")]
        password_fd: Option<u32>,
    },
    /// Grant or revoke a role.
    Role {
        /// The login.
        login: String,
        /// Grant this role.
        #[arg(
            long,
            value_enum,
            conflicts_with = "revoke",
            required_unless_present = "revoke"
        )]
        grant: Option<Role>,
        /// Revoke this role.
        #[arg(long, value_enum)]
        revoke: Option<Role>,
    },
    /// Disable an account (its history stays).
    Disable {
        /// The login.
        login: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The login.
        login: String,
    },
    /// Set a new password.
    Passwd {
        /// The login.
        login: String,
        /// Read the password from this file descriptor instead of the terminal.
        #[arg(long, value_name = "FD")]
        password_fd: Option<u32>,
    },
    /// List the people with their roles.
    List,
}

/// Runs the action.
pub fn run(config: &Path, action: &Action, json: bool) -> anyhow::Result<ExitCode> {
    let station = super::open(config)?;
    match action {
        Action::Add {
            login,
            name,
            department,
            badge,
            roles,
            password_fd,
        } => {
            let password = read_secret(*password_fd, &format!("{login} 的新密码: "))?;
            let id = station.add_person(
                &NewPerson {
                    login,
                    name,
                    department,
                    badge: badge.as_deref(),
                    roles,
                },
                &password,
            )?;
            custody::outln!("已添加 {login}（编号 {id}）")?;
        }
        Action::Role {
            login,
            grant,
            revoke,
        } => match (grant, revoke) {
            (Some(role), _) => {
                station.change_role(login, *role, true)?;
                custody::outln!("{login} 获得角色 {}", role.name_zh())?;
            }
            (None, Some(role)) => {
                station.change_role(login, *role, false)?;
                custody::outln!("{login} 不再担任 {}", role.name_zh())?;
            }
            (None, None) => anyhow::bail!("say --grant ROLE or --revoke ROLE"),
        },
        Action::Disable { login } => {
            station.set_disabled(login, true)?;
            custody::outln!("{login} 已停用")?;
        }
        Action::Enable { login } => {
            station.set_disabled(login, false)?;
            custody::outln!("{login} 已启用")?;
        }
        Action::Passwd { login, password_fd } => {
            let password = read_secret(*password_fd, &format!("{login} 的新密码: "))?;
            station.set_password(login, &password)?;
            custody::outln!("{login} 的密码已更新")?;
        }
        Action::List => {
            let people = station.ledger().people()?;
            if json {
                custody::outln!("{}", serde_json::to_string_pretty(&people)?)?;
            } else {
                let rows: Vec<Vec<String>> = people
                    .iter()
                    .map(|p| {
                        let roles: Vec<&str> = p.roles.iter().map(|r| r.name_zh()).collect();
                        vec![
                            p.id.to_string(),
                            p.login.clone(),
                            p.name.clone(),
                            p.department.clone(),
                            p.badge.clone().unwrap_or_default(),
                            roles.join("、"),
                            if p.disabled { "停用" } else { "" }.into(),
                        ]
                    })
                    .collect();
                let columns = [
                    ("编号", true),
                    ("账号", false),
                    ("姓名", false),
                    ("部门", false),
                    ("执法证号", false),
                    ("角色", false),
                    ("状态", false),
                ];
                custody::out!("{}", super::table(&columns, &rows))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
