//! Requests to view or copy clips (调阅/复制申请) and their approval under the matrix of
//! shared/reference/supervision.md: footage of a department is approved by the head of
//! the department that collected it (the department of the officer who recorded it);
//! footage leaving the agency also by the agency head; sensitive footage needs a second,
//! higher approval by an agency head. Never by the requester, never by an officer who
//! recorded a clip in the request, never by IT. An approval names the exact clip records,
//! expires, and a copy is made from it once.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use custody::{
    AccessAction, DecisionFact, ExportForm, MAX_EVENT_RECORDS, RecordHash, RequestFact, Role,
    Signature, StationFact, StationRecord,
};
use serde::Serialize;

use super::Actor;
use crate::ledger::{AccessQuery, ShippedRecord};
use crate::report::ClipRow;
use crate::{ReportQuery, Station};

/// Days an approval lasts unless the approver says otherwise.
pub const APPROVAL_DAYS: i64 = 7;
/// The longest an approval may last.
pub const MAX_APPROVAL_DAYS: i64 = 30;

/// A request to make.
#[derive(Debug, Clone)]
pub struct NewRequest<'a> {
    /// A whole case (any spelling of its number): every clip under it now.
    pub case: Option<&'a str>,
    /// Clips by number (编号) or record hash.
    pub clips: &'a [String],
    /// 事由.
    pub purpose: &'a str,
    /// What is to be given.
    pub form: ExportForm,
    /// Where it goes.
    pub destination: &'a str,
    /// Whether it leaves the agency.
    pub outside: bool,
    /// Whether the footage is sensitive.
    pub sensitive: bool,
}

/// An approval a request needs: a role, and for a department head, which department.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Requirement {
    /// The role that approves.
    pub role: Role,
    /// The department whose head it must be (`None`: any agency head).
    pub department: Option<String>,
}

impl Requirement {
    /// Whether an approval by `role` of `department` fills this requirement (an agency
    /// head may stand in for a department head).
    fn filled_by(&self, role: Role, department: &str) -> bool {
        match self.role {
            Role::DepartmentHead => {
                role == Role::AgencyHead
                    || (role == Role::DepartmentHead
                        && self.department.as_deref() == Some(department))
            }
            other => role == other,
        }
    }

    /// The requirement for people.
    pub fn zh(&self) -> String {
        match &self.department {
            Some(d) => format!("{d}{}", self.role.name_zh()),
            None => self.role.name_zh().to_owned(),
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Every approval given; usable until it expires.
    Approved,
    /// Rejected by an approver.
    Rejected,
    /// A copy was made from it (an approval is used once).
    Used,
    /// Approved, but past its expiry unused.
    Expired,
}

impl RequestState {
    /// The state for people.
    pub fn zh(self) -> &'static str {
        match self {
            Self::Pending => "待审批",
            Self::Approved => "已批准",
            Self::Rejected => "已驳回",
            Self::Used => "已使用",
            Self::Expired => "已过期",
        }
    }
}

/// A request with its decisions and what it still needs.
#[derive(Debug, Clone, Serialize)]
pub struct RequestStatus {
    /// The id (its station record's seq).
    pub id: u64,
    /// Hash of its station record.
    pub record: RecordHash,
    /// Its leaf in the log.
    pub log_index: u64,
    /// When it was made.
    pub requested_at: DateTime<Utc>,
    /// The request.
    pub fact: RequestFact,
    /// The requester's login.
    pub requester: String,
    /// Where it stands.
    pub state: RequestState,
    /// The approvals it needs, all of them.
    pub needs: Vec<Requirement>,
    /// Those not given yet.
    pub missing: Vec<Requirement>,
    /// The decisions, in order: (record hash, decision).
    pub decisions: Vec<(RecordHash, DecisionFact)>,
    /// When the approval expires (the earliest of its approvals').
    pub expires: Option<DateTime<FixedOffset>>,
    /// The requester's and deciders' names and departments, by id, for people.
    pub names: BTreeMap<u64, String>,
}

impl RequestStatus {
    /// The approving decisions' record hashes.
    pub fn approvals(&self) -> Vec<RecordHash> {
        self.decisions
            .iter()
            .filter(|(_, d)| d.approved)
            .map(|(h, _)| *h)
            .collect()
    }
}

/// The approvals a request needs, given the departments that collected its clips
/// (`None`: an officer the station has no account for, whose footage the agency head
/// approves): the head of each collecting department; the agency head too when it leaves
/// the agency; and for sensitive footage a second, higher approval by an agency head.
fn requirements(fact: &RequestFact, departments: &BTreeSet<Option<String>>) -> Vec<Requirement> {
    let agency_head = Requirement {
        role: Role::AgencyHead,
        department: None,
    };
    let mut base: BTreeSet<Requirement> = departments
        .iter()
        .map(|d| match d {
            Some(d) => Requirement {
                role: Role::DepartmentHead,
                department: Some(d.clone()),
            },
            None => agency_head.clone(),
        })
        .collect();
    if fact.outside {
        base.insert(agency_head.clone());
    }
    let mut needs: Vec<Requirement> = base.into_iter().collect();
    if fact.sensitive {
        needs.push(agency_head);
    }
    needs
}

/// Which requirements the approvals (role, department of the approver) leave unfilled:
/// each approval fills one requirement, its own role's first.
fn missing(needs: &[Requirement], approvals: &[(Role, String)]) -> Vec<Requirement> {
    let mut open: Vec<Requirement> = needs.to_vec();
    for (role, department) in approvals {
        let exact = open
            .iter()
            .position(|r| r.role == *role && r.filled_by(*role, department));
        if let Some(i) = exact.or_else(|| open.iter().position(|r| r.filled_by(*role, department)))
        {
            open.remove(i);
        }
    }
    open
}

impl Station {
    /// Makes a request to view or copy clips, as a station record. IT may not ask for
    /// footage. Every clip named must be in the ledger.
    ///
    /// # Errors
    /// A refused role, an unknown clip, no clips, too many, an empty purpose or
    /// destination, or a ledger failure.
    pub fn make_request(
        &self,
        actor: &Actor,
        new: &NewRequest<'_>,
    ) -> anyhow::Result<RequestStatus> {
        actor.refuse_it("requests for footage")?;
        if new.purpose.trim().is_empty() {
            bail!("a request needs its purpose (事由, --purpose)");
        }
        if new.destination.trim().is_empty() {
            bail!("a request needs its destination (--to, e.g. 某某区人民法院)");
        }
        let case_number = new
            .case
            .map(|c| self.case_number(c))
            .transpose()?
            .map(|n| n.to_string());
        let mut records: BTreeSet<RecordHash> = BTreeSet::new();
        if let Some(case) = &case_number {
            let clips = self.report(
                &ReportQuery {
                    case: Some(case.clone()),
                    ..ReportQuery::default()
                },
                self.now(),
            )?;
            records.extend(clips.clips.iter().map(clip_record));
        }
        for clip in new.clips {
            records.insert(self.find_clip(clip)?);
        }
        if records.is_empty() {
            bail!("the request names no clips (a case without clips, or no --clip)");
        }
        if records.len() > MAX_EVENT_RECORDS {
            bail!(
                "a request names at most {MAX_EVENT_RECORDS} clips ({} asked): split it",
                records.len()
            );
        }
        let rec = self.commit_station_fact(StationFact::Request(RequestFact {
            requester: actor.id(),
            role: actor.role(),
            case_number,
            records: records.into_iter().collect(),
            purpose: new.purpose.trim().into(),
            form: new.form,
            destination: new.destination.trim().into(),
            outside: new.outside,
            sensitive: new.sensitive,
        }))?;
        self.request_status(rec.body().seq)
    }

    /// The record hash of a clip named by its number (编号, as sealed or as bound to a
    /// case) or by its record hash (hex).
    ///
    /// # Errors
    /// No such clip, or a ledger failure.
    pub fn find_clip(&self, id: &str) -> anyhow::Result<RecordHash> {
        if let Ok(hash) = id.parse::<RecordHash>()
            && self.ledger().clip_exists(&hash)?
        {
            return Ok(hash);
        }
        self.ledger()
            .clip_by_number(id.trim())?
            .with_context(|| format!("no clip {id:?} in the ledger (a clip number or record hash)"))
    }

    /// Where request `id` stands: its decisions (each checked under the station key) and
    /// the approvals it still needs.
    ///
    /// # Errors
    /// No such request, a stored record that does not verify, or a ledger failure.
    pub fn request_status(&self, id: u64) -> anyhow::Result<RequestStatus> {
        let departments = self.ledger().departments_by_badge()?;
        self.request_status_in(id, &departments)
    }

    /// As [`Station::request_status`], with the officers' departments (badge to
    /// department) read once for a list.
    fn request_status_in(
        &self,
        id: u64,
        departments: &BTreeMap<String, String>,
    ) -> anyhow::Result<RequestStatus> {
        let key = self.station_key().public_key();
        let (request, decisions, used) = {
            let ledger = self.ledger();
            let request = ledger
                .request(id)?
                .with_context(|| format!("no request {id}"))?;
            let decisions = ledger.decisions(id)?;
            let used = ledger
                .access_events(&AccessQuery {
                    request: Some(id),
                    ..AccessQuery::default()
                })?
                .iter()
                .any(|e| e.fact.action == AccessAction::Export);
            (request, decisions, used)
        };
        let rec = verified(&request.record, &key)?;
        let StationFact::Request(fact) = rec.body().fact.clone() else {
            bail!("request {id}'s record is not a request");
        };
        let mut names = BTreeMap::new();
        let mut name_of = |id: u64| -> anyhow::Result<Option<String>> {
            let person = self.ledger().person(id)?;
            if let Some(p) = &person {
                names.insert(id, format!("{}（{}）", p.name, p.department));
            }
            Ok(person.map(|p| p.login))
        };
        let requester = name_of(fact.requester)?.unwrap_or_else(|| format!("#{}", fact.requester));
        let clips = self.clips_by_record(&fact.records)?;
        let collecting: BTreeSet<Option<String>> = clips
            .iter()
            .map(|c| departments.get(&c.officer_cert).cloned())
            .collect();
        let needs = requirements(&fact, &collecting);
        let mut decided = Vec::new();
        let mut approvals = Vec::new();
        let mut rejected = false;
        let mut expires: Option<DateTime<FixedOffset>> = None;
        for shipped in &decisions {
            let rec = verified(shipped, &key)?;
            let StationFact::Decision(d) = rec.body().fact.clone() else {
                bail!("a decision row of request {id} is not a decision");
            };
            name_of(d.approver)?;
            // A decision counts only for this request's exact record and clips.
            let sound = d.request == id && d.request_record == rec_hash(&request.record);
            if sound && d.approved && d.records == fact.records {
                let department = self
                    .ledger()
                    .person(d.approver)?
                    .map(|p| p.department)
                    .unwrap_or_default();
                approvals.push((d.role, department));
                expires = match (expires, d.expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            } else if sound && !d.approved {
                rejected = true;
            }
            decided.push((rec.hash(), d));
        }
        let missing = missing(&needs, &approvals);
        let state = if rejected {
            RequestState::Rejected
        } else if used {
            RequestState::Used
        } else if !missing.is_empty() {
            RequestState::Pending
        } else if expires.is_some_and(|e| e <= self.now()) {
            RequestState::Expired
        } else {
            RequestState::Approved
        };
        Ok(RequestStatus {
            id,
            record: rec.hash(),
            log_index: request.record.log_index,
            requested_at: request.at,
            fact,
            requester,
            state,
            needs,
            missing,
            decisions: decided,
            expires,
            names,
        })
    }

    /// Every request, newest first, with where it stands.
    ///
    /// # Errors
    /// A ledger failure.
    pub fn requests(&self) -> anyhow::Result<Vec<RequestStatus>> {
        let (ids, departments) = {
            let ledger = self.ledger();
            let ids: Vec<u64> = ledger.requests()?.iter().map(|r| r.id).collect();
            (ids, ledger.departments_by_badge()?)
        };
        ids.into_iter()
            .map(|id| self.request_status_in(id, &departments))
            .collect()
    }

    /// Page `index` (from 0) of `per_page` requests, newest first, with where each
    /// stands, and how many there are in all.
    ///
    /// # Errors
    /// A ledger failure.
    pub fn requests_page(
        &self,
        index: usize,
        per_page: usize,
    ) -> anyhow::Result<(Vec<RequestStatus>, usize)> {
        let (ids, total, departments) = {
            let ledger = self.ledger();
            let (ids, total) = ledger.newest_requests(index * per_page, per_page)?;
            (ids, total, ledger.departments_by_badge()?)
        };
        let page = ids
            .into_iter()
            .map(|id| self.request_status_in(id, &departments))
            .collect::<anyhow::Result<_>>()?;
        Ok((page, total))
    }

    /// Approves (for `days`, at most [`MAX_APPROVAL_DAYS`]) or rejects (with a reason)
    /// request `id` as `actor`, as a station record. Refused: a decider who is not a
    /// department head or the agency head, holds the IT role, made the request, recorded
    /// a clip in it, or already decided it; a request that is not pending; an approver
    /// the request needs none of.
    ///
    /// # Errors
    /// As above, or a ledger failure.
    pub fn decide(
        &self,
        actor: &Actor,
        id: u64,
        approve: bool,
        reason: Option<&str>,
        days: i64,
    ) -> anyhow::Result<RequestStatus> {
        let status = self.request_status(id)?;
        if actor.id() == status.fact.requester {
            bail!("refused: 不能审批自己的申请 (the requester cannot decide their own request)");
        }
        if actor.person().holds(Role::It) {
            bail!("refused: IT 管理员 never approves (a person holding the IT role cannot decide)");
        }
        actor.require(
            &[Role::DepartmentHead, Role::AgencyHead],
            "deciding a request",
        )?;
        let clips = self.clips_by_record(&status.fact.records)?;
        if let Some(c) = clips.iter().find(|c| actor.recorded(c)) {
            bail!(
                "refused: you recorded clip {} of this request; another person must decide",
                c.number
            );
        }
        if status
            .decisions
            .iter()
            .any(|(_, d)| d.approver == actor.id())
        {
            bail!(
                "refused: you already decided request {id}; the next approval is another person's"
            );
        }
        if status.state != RequestState::Pending {
            bail!("request {id} is {}: nothing to decide", status.state.zh());
        }
        let department = &actor.person().department;
        if !status
            .missing
            .iter()
            .any(|r| r.filled_by(actor.role(), department))
        {
            let wanted: Vec<String> = status.missing.iter().map(Requirement::zh).collect();
            bail!(
                "refused: request {id} needs the approval of {}, not of {department}{}",
                wanted.join("、"),
                actor.role().name_zh()
            );
        }
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if !approve && reason.is_none() {
            bail!("a rejection needs its reason (--reason)");
        }
        if !(1..=MAX_APPROVAL_DAYS).contains(&days) {
            bail!("an approval lasts 1 to {MAX_APPROVAL_DAYS} days, not {days}");
        }
        let expires = (self.now() + Duration::days(days)).with_timezone(&self.config().utc_offset);
        self.commit_station_fact(StationFact::Decision(DecisionFact {
            request: id,
            request_record: status.record,
            approver: actor.id(),
            role: actor.role(),
            approved: approve,
            reason: reason.map(str::to_owned),
            records: if approve {
                status.fact.records.clone()
            } else {
                Vec::new()
            },
            expires: approve.then_some(expires),
        }))?;
        self.request_status(id)
    }

    /// The clips with these record hashes, as reports show them.
    pub(crate) fn clips_by_record(&self, records: &[RecordHash]) -> anyhow::Result<Vec<ClipRow>> {
        let report = self.report(
            &ReportQuery {
                records: Some(records.to_vec()),
                ..ReportQuery::default()
            },
            self.now(),
        )?;
        Ok(report.clips)
    }

    /// The department of each officer with an account, by badge.
    pub(crate) fn departments(&self) -> anyhow::Result<BTreeMap<String, String>> {
        Ok(self.ledger().departments_by_badge()?)
    }
}

/// A clip row's record hash.
pub(crate) fn clip_record(row: &ClipRow) -> RecordHash {
    row.record
}

/// A stored station record, checked under the station key.
pub(crate) fn verified(
    shipped: &ShippedRecord,
    key: &custody::PublicKey,
) -> anyhow::Result<StationRecord> {
    let sig = Signature::from_bytes(&shipped.sig)
        .map_err(|e| anyhow::anyhow!("station record {}: {e}", shipped.seq))?;
    StationRecord::parse_verified(shipped.bytes.clone(), key, &sig).with_context(|| {
        format!(
            "station record {} does not verify under the station key: the ledger was changed",
            shipped.seq
        )
    })
}

fn rec_hash(shipped: &ShippedRecord) -> RecordHash {
    RecordHash::of(&shipped.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(outside: bool, sensitive: bool) -> RequestFact {
        RequestFact {
            requester: 1,
            role: Role::Clerk,
            case_number: None,
            records: vec![],
            purpose: "起诉".into(),
            form: ExportForm::Package,
            destination: "法院".into(),
            outside,
            sensitive,
        }
    }

    fn head(d: &str) -> (Role, String) {
        (Role::DepartmentHead, d.into())
    }

    #[test]
    fn the_matrix_asks_the_collecting_heads_the_agency_head_outside_and_a_second_when_sensitive() {
        let two: BTreeSet<Option<String>> =
            [Some("治安大队".to_owned()), Some("交警大队".to_owned())].into();
        let needs = requirements(&request(false, false), &two);
        assert_eq!(needs.len(), 2);
        assert_eq!(missing(&needs, &[head("治安大队")]).len(), 1);
        assert!(missing(&needs, &[head("治安大队"), head("交警大队")]).is_empty());
        // A head of another department fills nothing.
        assert_eq!(missing(&needs, &[head("刑侦大队")]).len(), 2);
        // Outside the agency: the collecting heads, then the agency head.
        let outside = requirements(&request(true, false), &two);
        assert_eq!(outside.len(), 3);
        let heads = [head("治安大队"), head("交警大队")];
        assert_eq!(
            missing(&outside, &heads),
            [Requirement {
                role: Role::AgencyHead,
                department: None
            }]
        );
        let all = [
            head("治安大队"),
            head("交警大队"),
            (Role::AgencyHead, "局领导".into()),
        ];
        assert!(missing(&outside, &all).is_empty());
        // Sensitive: the head, then also an agency head.
        let one: BTreeSet<Option<String>> = [Some("治安大队".to_owned())].into();
        let sensitive = requirements(&request(false, true), &one);
        assert_eq!(missing(&sensitive, &[head("治安大队")]).len(), 1);
        assert!(
            missing(
                &sensitive,
                &[head("治安大队"), (Role::AgencyHead, "局领导".into())]
            )
            .is_empty()
        );
        // An officer without an account: the agency head approves, once even outside.
        let unknown: BTreeSet<Option<String>> = [None].into();
        assert_eq!(
            requirements(&request(false, false), &unknown)[0].role,
            Role::AgencyHead
        );
        assert_eq!(requirements(&request(true, false), &unknown).len(), 1);
        // Clerks and oversight fill no requirement.
        assert_eq!(
            missing(&needs, &[(Role::Clerk, "治安大队".into())]).len(),
            2
        );
    }
}
