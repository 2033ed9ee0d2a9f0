//! Supervised access (调阅监督): people and their roles, logging in, who may see what,
//! the access log, requests and their approval, and export packages. Every access to
//! evidence is an access event, durably in the ledger and the log before any content is
//! served; nothing leaves as a copy without an approval under the matrix of
//! shared/reference/supervision.md.

mod accounts;
mod events;
mod export;
mod requests;
mod rights;

use custody::Role;

pub use accounts::{
    Authenticator, Credential, LOCKOUT_FAILURES, LOCKOUT_MINUTES, MIN_PASSWORD_CHARS, NewPerson,
    PasswordAuthenticator, hash_password,
};
pub use events::AccessEntry;
pub use export::Exported;
pub use requests::{
    APPROVAL_DAYS, MAX_APPROVAL_DAYS, NewRequest, RequestState, RequestStatus, Requirement,
};

use crate::ledger::LedgerPerson;

/// A person logged in, acting under one role they hold. Only [`crate::Station::login`]
/// makes one, so holding an `Actor` means the person authenticated.
#[derive(Debug, Clone)]
pub struct Actor {
    person: LedgerPerson,
    role: Role,
}

impl Actor {
    /// The person's permanent id.
    pub fn id(&self) -> u64 {
        self.person.id
    }

    /// The role acted under.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The person.
    pub fn person(&self) -> &LedgerPerson {
        &self.person
    }
}
