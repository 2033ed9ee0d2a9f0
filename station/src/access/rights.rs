//! Who may see what without a request (shared/reference/supervision.md): an officer
//! their own clips (一人一档); a department head their department's footage; clerks,
//! oversight and the agency head the case files' metadata; IT nothing of the evidence.
//! Anything beyond needs an approved request.

use std::collections::BTreeMap;

use anyhow::bail;
use custody::Role;

use super::Actor;
use crate::report::{ClipRow, ReportQuery};

impl Actor {
    /// Refuses IT, who runs the station but sees no evidence.
    ///
    /// # Errors
    /// The actor acts as IT.
    pub(crate) fn refuse_it(&self, what: &str) -> anyhow::Result<()> {
        if self.role == Role::It {
            bail!("refused: IT 管理员 runs the station and sees no evidence ({what})");
        }
        Ok(())
    }

    /// Requires one of `roles`.
    ///
    /// # Errors
    /// The actor acts under another role.
    pub(crate) fn require(&self, roles: &[Role], what: &str) -> anyhow::Result<()> {
        if !roles.contains(&self.role) {
            let names: Vec<&str> = roles.iter().map(|r| r.name_zh()).collect();
            bail!(
                "refused: {what} is for {}, not for {}",
                names.join("、"),
                self.role.name_zh()
            );
        }
        Ok(())
    }

    /// Whether the actor may see a clip's description (case views): an officer only
    /// their own, IT none, every other role all.
    pub(crate) fn sees_clip(&self, clip: &ClipRow) -> bool {
        match self.role {
            Role::It => false,
            Role::Officer => self.recorded(clip),
            _ => true,
        }
    }

    /// `query` narrowed to the clips the actor may see described ([`Actor::sees_clip`] as
    /// a query): an officer's own, by badge; `None` when that leaves nothing (IT, an
    /// officer without a badge or asking for another's clips).
    pub(crate) fn narrow(&self, query: &ReportQuery) -> Option<ReportQuery> {
        match self.role {
            Role::It => None,
            Role::Officer => {
                let own = self.person.badge.as_deref()?;
                if query.officer.as_deref().is_some_and(|asked| asked != own) {
                    return None;
                }
                Some(ReportQuery {
                    officer: Some(own.to_owned()),
                    ..query.clone()
                })
            }
            _ => Some(query.clone()),
        }
    }

    /// Whether the actor recorded the clip (their badge is the record's officer).
    pub(crate) fn recorded(&self, clip: &ClipRow) -> bool {
        self.person.badge.as_deref() == Some(clip.officer_cert.as_str())
    }

    /// Whether the actor may play the clip without a request: an officer their own, a
    /// department head their department's (the department of the officer who recorded
    /// it, by `departments`: badge to department).
    pub(crate) fn may_play(&self, clip: &ClipRow, departments: &BTreeMap<String, String>) -> bool {
        match self.role {
            Role::Officer => self.recorded(clip),
            Role::DepartmentHead => {
                departments.get(&clip.officer_cert) == Some(&self.person.department)
            }
            _ => false,
        }
    }
}
