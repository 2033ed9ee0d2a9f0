//! Access events: written durably to the ledger and appended to the log (a checkpoint
//! signed over them) before any content is served, so a failed write serves nothing; and
//! the access log, each event with its inclusion proof.

use anyhow::bail;
use custody::{
    AccessAction, AccessFact, MAX_EVENT_RECORDS, RecordHash, Role, StationFact, StationRecord,
    TlogProof,
};
use serde::Serialize;

use super::Actor;
use crate::Station;
use crate::ledger::{AccessQuery, LedgerAccessEvent};

/// One access event as the access log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEntry {
    /// The event.
    #[serde(flatten)]
    pub event: LedgerAccessEvent,
    /// The person's login, if the event names one.
    pub login: Option<String>,
    /// Their name.
    pub name: Option<String>,
    /// The event's inclusion proof (`c2sp.org/tlog-proof@v1`) to the latest checkpoint.
    pub proof: String,
}

impl Station {
    /// Writes an access event of `actor` as a station record, in the ledger and the log,
    /// with a checkpoint signed over it. Call it before serving anything: when it fails,
    /// serve nothing.
    ///
    /// # Errors
    /// The ledger or the signer failing.
    pub(crate) fn record_access(
        &self,
        actor: &Actor,
        action: AccessAction,
        case: Option<&str>,
        records: &[RecordHash],
        request: Option<u64>,
        approvals: &[RecordHash],
    ) -> anyhow::Result<StationRecord> {
        self.record_access_event(
            Some(actor.id()),
            Some(actor.role()),
            action,
            case,
            records,
            request,
            approvals,
        )
    }

    /// As [`Station::record_access`], for events that may name no person (a failed login).
    #[expect(clippy::too_many_arguments, reason = "the fields of one access event")]
    pub(crate) fn record_access_event(
        &self,
        person: Option<u64>,
        role: Option<Role>,
        action: AccessAction,
        case: Option<&str>,
        records: &[RecordHash],
        request: Option<u64>,
        approvals: &[RecordHash],
    ) -> anyhow::Result<StationRecord> {
        let (records, query) = if records.len() > MAX_EVENT_RECORDS {
            (Vec::new(), Some(format!("records: {}", records.len())))
        } else {
            (records.to_vec(), None)
        };
        self.commit_station_fact(StationFact::Access(AccessFact {
            action,
            person,
            role,
            case_number: case.map(str::to_owned),
            records,
            query,
            request,
            approvals: approvals.to_vec(),
        }))
    }

    /// As [`Station::record_access`], for a search or report: the query in ids.
    ///
    /// # Errors
    /// The ledger or the signer failing.
    pub(crate) fn record_query(
        &self,
        actor: &Actor,
        action: AccessAction,
        case: Option<&str>,
        query: String,
    ) -> anyhow::Result<StationRecord> {
        self.commit_station_fact(StationFact::Access(AccessFact {
            action,
            person: Some(actor.id()),
            role: Some(actor.role()),
            case_number: case.map(str::to_owned),
            records: Vec::new(),
            query: Some(query),
            request: None,
            approvals: Vec::new(),
        }))
    }

    /// The access log `query` selects (who saw or copied what, when, under which request),
    /// each event with its inclusion proof. Oversight (法制/督察/纪委) and the agency head
    /// read it; reading it is an access event too.
    ///
    /// # Errors
    /// Another role, or a ledger failure.
    pub fn access_log(
        &self,
        actor: &Actor,
        query: &AccessQuery,
    ) -> anyhow::Result<Vec<AccessEntry>> {
        if !matches!(actor.role(), Role::Oversight | Role::AgencyHead) {
            bail!(
                "refused: the access log is read by oversight (法制/督察/纪委) or the agency head, not by {}",
                actor.role().name_zh()
            );
        }
        let mut asked = Vec::new();
        if let Some(p) = query.person {
            asked.push(format!("person={p}"));
        }
        if let Some(c) = &query.clip {
            asked.push(format!("clip={c}"));
        }
        if let Some(r) = query.request {
            asked.push(format!("request={r}"));
        }
        self.record_query(
            actor,
            AccessAction::AccessLog,
            query.case.as_deref(),
            asked.join(" "),
        )?;
        let ledger = self.ledger();
        let events = ledger.access_events(query)?;
        let checkpoint = ledger
            .latest_checkpoint()?
            .ok_or_else(|| anyhow::anyhow!("the log has no checkpoint"))?;
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let person = match event.fact.person {
                Some(id) => ledger.person(id)?,
                None => None,
            };
            let proof = TlogProof {
                extra: None,
                index: event.log_index,
                hashes: ledger.inclusion_proof(event.log_index, checkpoint.size)?,
                checkpoint: checkpoint.note.clone(),
            };
            out.push(AccessEntry {
                login: person.as_ref().map(|p| p.login.clone()),
                name: person.map(|p| p.name),
                proof: proof.to_text(),
                event,
            });
        }
        Ok(out)
    }
}

impl Station {
    /// An integrity report for `query` as `actor`: for clerks, department heads,
    /// oversight and the agency head (it describes every clip it covers; officers and IT
    /// get none). The report event, naming the query, is written first.
    ///
    /// # Errors
    /// A refused role, or a ledger failure (no report then).
    pub fn report_for(
        &self,
        actor: &Actor,
        query: &crate::ReportQuery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<crate::Report> {
        self.record_report(actor, query)?;
        Ok(self.report(query, now)?)
    }

    /// As [`Station::report_for`], listing only page `index` (from 0) of `per_page`
    /// clips, with the totals of all (the web page's view of a period of 40,000 clips).
    ///
    /// # Errors
    /// As [`Station::report_for`].
    pub fn report_page_for(
        &self,
        actor: &Actor,
        query: &crate::ReportQuery,
        (index, per_page): (usize, usize),
    ) -> anyhow::Result<crate::Report> {
        self.record_report(actor, query)?;
        let ledger = self.ledger();
        let cfg = self.config();
        Ok(crate::Report::page(
            &ledger,
            &cfg.origin,
            query,
            (cfg.utc_offset, self.now()),
            (index, per_page),
        )?)
    }

    /// Checks that `actor` may read reports, and writes the report's access event.
    fn record_report(&self, actor: &Actor, query: &crate::ReportQuery) -> anyhow::Result<()> {
        actor.require(
            &[
                Role::Clerk,
                Role::DepartmentHead,
                Role::Oversight,
                Role::AgencyHead,
            ],
            "integrity reports",
        )?;
        self.record_query(
            actor,
            AccessAction::Report,
            query.case.as_deref(),
            query_terms(query),
        )?;
        Ok(())
    }
}

impl Station {
    /// Clips matching `query` (device, period) and `officer` (a badge), as `actor` may see
    /// them (an officer their own; IT none), at most `limit` of them with the count of all
    /// that matched. The search event, naming the terms, is written first.
    ///
    /// # Errors
    /// IT, or a ledger failure.
    pub fn search_clips(
        &self,
        actor: &Actor,
        query: &crate::ReportQuery,
        officer: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<(Vec<crate::ClipRow>, usize)> {
        actor.refuse_it("searching clips")?;
        let mut query = query.clone();
        query.officer = officer.map(str::to_owned);
        self.record_query(
            actor,
            AccessAction::Search,
            query.case.as_deref(),
            query_terms(&query),
        )?;
        let Some(query) = actor.narrow(&query) else {
            return Ok((Vec::new(), 0));
        };
        let (clips, total) =
            crate::report::clip_page(&self.ledger(), &query, self.config().utc_offset, (0, limit))?;
        debug_assert!(clips.iter().all(|c| actor.sees_clip(c)));
        Ok((clips, total))
    }
}

/// A report's or search's terms in ids, as its access event states them (the case is the
/// event's own field).
fn query_terms(query: &crate::ReportQuery) -> String {
    let mut asked = Vec::new();
    if let Some(d) = &query.device {
        asked.push(format!("device={d}"));
    }
    if let Some(o) = &query.officer {
        asked.push(format!("officer={o}"));
    }
    if let Some(s) = query.session {
        asked.push(format!("session={}", s.0));
    }
    if let Some(t) = query.from {
        asked.push(format!("from={}", t.to_rfc3339()));
    }
    if let Some(t) = query.to {
        asked.push(format!("to={}", t.to_rfc3339()));
    }
    asked.join(" ")
}
