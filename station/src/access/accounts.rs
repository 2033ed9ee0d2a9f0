//! Accounts: adding people, their roles, disabling them, passwords as argon2id hashes
//! (OWASP parameters), logging in behind an [`Authenticator`] seam (certificates or an
//! agency identity provider can come later), and lockout after repeated failures. Every
//! login and failed login is an access event.

use anyhow::{Context as _, bail};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::Duration;
use custody::{AccessAction, Role};

use super::Actor;
use crate::Station;
use crate::ledger::LedgerPerson;

/// Consecutive failed logins that lock an account.
pub const LOCKOUT_FAILURES: usize = 5;
/// How long a locked account stays locked after its latest failed login.
pub const LOCKOUT_MINUTES: i64 = 15;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id PHC string of `password`, with a fresh random salt.
///
/// # Errors
/// A password shorter than [`MIN_PASSWORD_CHARS`], or the hasher failing.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("a password needs at least {MIN_PASSWORD_CHARS} characters");
    }
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a salt"))?;
    let salt =
        SaltString::encode_b64(&bytes).map_err(|e| anyhow::anyhow!("cannot encode a salt: {e}"))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// What a person presents to log in.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// A password (from a prompt or a file descriptor, never from argv).
    Password(&'a str),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential::Password(…)")
    }
}

/// Checks a person's credential. Local passwords today; a certificate or an agency
/// identity provider is another implementation.
pub trait Authenticator: Send + Sync {
    /// Whether `credential` proves to be `person`.
    ///
    /// # Errors
    /// The check could not be made (a stored hash that does not parse).
    fn verify(&self, person: &LedgerPerson, credential: Credential<'_>) -> anyhow::Result<bool>;
}

/// Local accounts: the password against the person's argon2id hash in the ledger.
pub struct PasswordAuthenticator;

/// A hash to check unknown logins against, so they take as long as known ones.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1P3bFEZ2mWJ2Yv5SUr9WQ1dR9cfmYQ1Xb9pQ0k0kQ2E";

impl Authenticator for PasswordAuthenticator {
    fn verify(&self, person: &LedgerPerson, credential: Credential<'_>) -> anyhow::Result<bool> {
        let Credential::Password(password) = credential;
        let Some(phc) = &person.password else {
            return Ok(false);
        };
        let hash = PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok(argon2().verify_password(password.as_bytes(), &hash).is_ok())
    }
}

/// A person to add.
#[derive(Debug, Clone)]
pub struct NewPerson<'a> {
    /// Login name (letters, digits, `.`, `-`, `_`).
    pub login: &'a str,
    /// Name for people.
    pub name: &'a str,
    /// 部门.
    pub department: &'a str,
    /// 执法证号, for officers.
    pub badge: Option<&'a str>,
    /// Roles to grant.
    pub roles: &'a [Role],
}

impl Station {
    /// Adds a person with their roles and password; returns their permanent id.
    ///
    /// # Errors
    /// A bad login, an empty name or department, a short password, a login or badge
    /// taken, or a ledger failure.
    pub fn add_person(&self, new: &NewPerson<'_>, password: &str) -> anyhow::Result<u64> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if new.login.is_empty() || new.login.len() > 64 || !new.login.chars().all(valid) {
            bail!(
                "a login is 1 to 64 letters, digits, '.', '-' or '_': {:?}",
                new.login
            );
        }
        if new.name.trim().is_empty() || new.department.trim().is_empty() {
            bail!("a person needs a name and a department");
        }
        if let Some(badge) = new.badge {
            custody::check_serial(badge).map_err(|_| {
                anyhow::anyhow!("a badge (执法证号) is letters and digits: {badge:?}")
            })?;
        }
        if new.roles.is_empty() {
            bail!("give the person at least one role (--role)");
        }
        if new.roles.contains(&Role::Officer) && new.badge.is_none() {
            bail!("an officer needs a badge (--badge 执法证号): it is how their clips are theirs");
        }
        let phc = hash_password(password)?;
        let now = self.now();
        let mut ledger = self.ledger();
        let id = ledger.add_person(
            new.login,
            new.name.trim(),
            new.department.trim(),
            new.badge,
            now,
        )?;
        for role in new.roles {
            ledger.change_role(id, *role, true, now)?;
        }
        ledger.set_password(id, &phc, now)?;
        Ok(id)
    }

    /// The person with `login`.
    ///
    /// # Errors
    /// No such person, or a ledger failure.
    pub fn person(&self, login: &str) -> anyhow::Result<LedgerPerson> {
        self.ledger()
            .person_by_login(login)?
            .with_context(|| format!("no person with the login {login:?}"))
    }

    /// Grants or revokes a role.
    ///
    /// # Errors
    /// No such person, or a ledger failure.
    pub fn change_role(&self, login: &str, role: Role, granted: bool) -> anyhow::Result<()> {
        let person = self.person(login)?;
        if granted && role == Role::Officer && person.badge.is_none() {
            bail!("an officer needs a badge; {login} has none");
        }
        Ok(self
            .ledger()
            .change_role(person.id, role, granted, self.now())?)
    }

    /// Disables an account (or enables it again).
    ///
    /// # Errors
    /// No such person, or a ledger failure.
    pub fn set_disabled(&self, login: &str, disabled: bool) -> anyhow::Result<()> {
        let person = self.person(login)?;
        Ok(self
            .ledger()
            .set_disabled(person.id, disabled, self.now())?)
    }

    /// Sets a new password.
    ///
    /// # Errors
    /// No such person, a short password, or a ledger failure.
    pub fn set_password(&self, login: &str, password: &str) -> anyhow::Result<()> {
        let person = self.person(login)?;
        let phc = hash_password(password)?;
        Ok(self.ledger().set_password(person.id, &phc, self.now())?)
    }

    /// Logs a person in to act under `role` (or their only role), through the station's
    /// authenticator. The login, and every refusal, is an access event. A disabled
    /// account, a locked one ([`LOCKOUT_FAILURES`] failures in a row lock it for
    /// [`LOCKOUT_MINUTES`]), a wrong credential or a role not held is refused.
    ///
    /// # Errors
    /// As above (one message for an unknown login and a wrong password), or a ledger
    /// failure.
    pub fn login(
        &self,
        login: &str,
        credential: Credential<'_>,
        role: Option<Role>,
    ) -> anyhow::Result<Actor> {
        let now = self.now();
        let found = self.ledger().person_by_login(login)?;
        let Some(person) = found else {
            // Spend the same time as a known login, then refuse alike.
            let dummy = LedgerPerson {
                id: 0,
                login: String::new(),
                name: String::new(),
                department: String::new(),
                badge: None,
                roles: Vec::new(),
                disabled: true,
                password: Some(DUMMY_PHC.into()),
            };
            let _ = PasswordAuthenticator.verify(&dummy, credential);
            self.record_access_event(None, None, AccessAction::LoginFailed, None, &[], None, &[])?;
            bail!("登录失败：账号或密码错误 (login failed: unknown login or wrong password)");
        };
        let failed = |why: &str| -> anyhow::Result<Actor> {
            self.record_access_event(
                Some(person.id),
                role,
                AccessAction::LoginFailed,
                None,
                &[],
                None,
                &[],
            )?;
            bail!("{why}")
        };
        if let Some(until) = self.locked_until(person.id)?
            && now < until
        {
            let local = until.with_timezone(&self.config().utc_offset);
            return failed(&format!(
                "账户已锁定，请于 {} 后再试 (account locked after {LOCKOUT_FAILURES} failed logins)",
                local.format("%H:%M")
            ));
        }
        if person.disabled {
            return failed("账户已停用 (the account is disabled)");
        }
        if !self.authenticator().verify(&person, credential)? {
            return failed(
                "登录失败：账号或密码错误 (login failed: unknown login or wrong password)",
            );
        }
        let role = match role {
            Some(r) if person.holds(r) => r,
            Some(r) => return failed(&format!("{login} does not hold the role {}", r.as_str())),
            None => match person.roles.as_slice() {
                [only] => *only,
                [] => return failed(&format!("{login} holds no role")),
                many => {
                    let ids: Vec<&str> = many.iter().map(|r| r.as_str()).collect();
                    return failed(&format!(
                        "{login} holds several roles: say which one to act under (--role {})",
                        ids.join("|")
                    ));
                }
            },
        };
        self.record_access_event(
            Some(person.id),
            Some(role),
            AccessAction::Login,
            None,
            &[],
            None,
            &[],
        )?;
        Ok(Actor { person, role })
    }

    /// Until when `person` is locked out, if their latest logins all failed.
    fn locked_until(&self, person: u64) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        let recent = self.ledger().recent_logins(person, LOCKOUT_FAILURES)?;
        if recent.len() < LOCKOUT_FAILURES || recent.iter().any(|(ok, _)| *ok) {
            return Ok(None);
        }
        Ok(recent
            .first()
            .map(|(_, at)| *at + Duration::minutes(LOCKOUT_MINUTES)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_with_owasp_parameters_and_salted() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        let person = LedgerPerson {
            id: 1,
            login: "x".into(),
            name: "x".into(),
            department: "x".into(),
            badge: None,
            roles: vec![],
            disabled: false,
            password: Some(a),
        };
        let auth = PasswordAuthenticator;
        assert!(
            auth.verify(&person, Credential::Password("correct horse battery"))
                .unwrap()
        );
        assert!(
            !auth
                .verify(&person, Credential::Password("correct horse batterY"))
                .unwrap()
        );
        assert!(hash_password("short").is_err());
        // The dummy hash for unknown logins parses, so it costs a real verification.
        assert!(PasswordHash::new(DUMMY_PHC).is_ok());
    }
}
