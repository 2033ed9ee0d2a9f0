//! People, their roles and passwords, and the access log: access events, requests and
//! decisions (each a station record, so a leaf of the log). Every table is append-only;
//! a person's current roles, password and state are their latest rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use custody::{AccessAction, AccessFact, DecisionFact, RecordHash, RequestFact, Role};
use rusqlite::{OptionalExtension as _, params};

use super::{Ledger, LedgerError, ShippedRecord, db_time, parse_db_time, to_i64};

/// A person as the ledger keeps them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerPerson {
    /// The permanent id (the log names people by it).
    pub id: u64,
    /// The login name.
    pub login: String,
    /// The name for people.
    pub name: String,
    /// 部门.
    pub department: String,
    /// 执法证号, for officers: the number device records name them by.
    pub badge: Option<String>,
    /// The roles held now.
    pub roles: Vec<Role>,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// The argon2id PHC string of the current password, if one was set.
    #[serde(skip)]
    pub password: Option<String>,
}

impl LedgerPerson {
    /// Whether the person holds `role` now.
    pub fn holds(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// One access event as the ledger keeps it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerAccessEvent {
    /// Its leaf in the log.
    pub log_index: u64,
    /// Hash of its station record.
    pub record: RecordHash,
    /// When.
    pub at: DateTime<Utc>,
    /// What was done, by whom, of what.
    #[serde(flatten)]
    pub fact: AccessFact,
}

/// Which access events to list.
#[derive(Debug, Clone, Default)]
pub struct AccessQuery {
    /// Events of one case.
    pub case: Option<String>,
    /// Events of one person.
    pub person: Option<u64>,
    /// Events that served one clip record.
    pub clip: Option<RecordHash>,
    /// Events made under one request.
    pub request: Option<u64>,
    /// Only the newest this many (still listed oldest first).
    pub newest: Option<usize>,
}

/// A request as the ledger keeps it: its id and its station record.
#[derive(Debug, Clone)]
pub struct LedgerRequest {
    /// The id (the seq of its station record).
    pub id: u64,
    /// Its station record.
    pub record: ShippedRecord,
    /// When it was made.
    pub at: DateTime<Utc>,
}

fn role(text: &str) -> Result<Role, LedgerError> {
    Role::from_id(text).ok_or_else(|| LedgerError::Invalid(format!("stored role {text:?}")))
}

fn record_hash(bytes: &[u8]) -> Result<RecordHash, LedgerError> {
    <[u8; 32]>::try_from(bytes)
        .map(RecordHash)
        .map_err(|_| LedgerError::Invalid(format!("stored hash of {} bytes", bytes.len())))
}

impl Ledger {
    /// Adds a person; their id is permanent.
    ///
    /// # Errors
    /// A login or badge already taken, or SQL failure.
    pub fn add_person(
        &mut self,
        login: &str,
        name: &str,
        department: &str,
        badge: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        let taken: Option<String> = self
            .conn
            .query_row(
                "SELECT login FROM people WHERE login = ?1 OR (badge IS NOT NULL AND badge = ?2)",
                params![login, badge],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = taken {
            return Err(LedgerError::Invalid(if other == login {
                format!("the login {login:?} is taken")
            } else {
                format!("the badge {badge:?} belongs to {other:?}")
            }));
        }
        self.conn.execute(
            "INSERT INTO people (login, name, department, badge, added_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![login, name, department, badge, db_time(now)],
        )?;
        Ok(self.conn.last_insert_rowid().unsigned_abs())
    }

    /// Grants (or revokes) `role` to a person.
    ///
    /// # Errors
    /// SQL failure.
    pub fn change_role(
        &mut self,
        person: u64,
        role: Role,
        granted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO role_changes (person, role, granted, at) VALUES (?1, ?2, ?3, ?4)",
            params![to_i64(person), role.as_str(), granted, db_time(now)],
        )?;
        Ok(())
    }

    /// Sets a person's password (an argon2id PHC string).
    ///
    /// # Errors
    /// SQL failure.
    pub fn set_password(
        &mut self,
        person: u64,
        phc: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO passwords (person, phc, set_at) VALUES (?1, ?2, ?3)",
            params![to_i64(person), phc, db_time(now)],
        )?;
        Ok(())
    }

    /// Disables a person's account (or enables it again).
    ///
    /// # Errors
    /// SQL failure.
    pub fn set_disabled(
        &mut self,
        person: u64,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO account_states (person, disabled, at) VALUES (?1, ?2, ?3)",
            params![to_i64(person), disabled, db_time(now)],
        )?;
        Ok(())
    }

    /// Every person, by id, with their current roles and state.
    ///
    /// # Errors
    /// SQL failure or a stored value the ledger did not write.
    pub fn people(&self) -> Result<Vec<LedgerPerson>, LedgerError> {
        self.people_where("1 = 1", &[])
    }

    /// The person with `login`.
    ///
    /// # Errors
    /// As [`Ledger::people`].
    pub fn person_by_login(&self, login: &str) -> Result<Option<LedgerPerson>, LedgerError> {
        Ok(self.people_where("p.login = ?1", &[login])?.pop())
    }

    /// The person with id `id`.
    ///
    /// # Errors
    /// As [`Ledger::people`].
    pub fn person(&self, id: u64) -> Result<Option<LedgerPerson>, LedgerError> {
        Ok(self.people_where("p.id = ?1", &[&id.to_string()])?.pop())
    }

    /// The department of every person with a badge, by badge: the department that
    /// collected a clip is its officer's.
    ///
    /// # Errors
    /// SQL failure.
    pub fn departments_by_badge(&self) -> Result<BTreeMap<String, String>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT badge, department FROM people WHERE badge IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn people_where(&self, filter: &str, args: &[&str]) -> Result<Vec<LedgerPerson>, LedgerError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT p.id, p.login, p.name, p.department, p.badge,
                    (SELECT phc FROM passwords w WHERE w.person = p.id ORDER BY w.id DESC LIMIT 1),
                    COALESCE((SELECT disabled FROM account_states a WHERE a.person = p.id
                              ORDER BY a.id DESC LIMIT 1), 0)
             FROM people p WHERE {filter} ORDER BY p.id"
        ))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut people = Vec::new();
        while let Some(r) = rows.next()? {
            people.push(LedgerPerson {
                id: r.get::<_, i64>(0)?.unsigned_abs(),
                login: r.get(1)?,
                name: r.get(2)?,
                department: r.get(3)?,
                badge: r.get(4)?,
                password: r.get(5)?,
                disabled: r.get(6)?,
                roles: Vec::new(),
            });
        }
        let mut roles = self
            .conn
            .prepare("SELECT role, granted FROM role_changes WHERE person = ?1 ORDER BY id")?;
        for person in &mut people {
            let mut held = std::collections::BTreeSet::new();
            let mut rows = roles.query([to_i64(person.id)])?;
            while let Some(r) = rows.next()? {
                let which = role(&r.get::<_, String>(0)?)?;
                if r.get::<_, bool>(1)? {
                    held.insert(which);
                } else {
                    held.remove(&which);
                }
            }
            person.roles = held.into_iter().collect();
        }
        Ok(people)
    }

    /// A person's latest login attempts, newest first: `(succeeded, when)`.
    ///
    /// # Errors
    /// SQL failure.
    pub fn recent_logins(
        &self,
        person: u64,
        limit: usize,
    ) -> Result<Vec<(bool, DateTime<Utc>)>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT action, at FROM access_events
             WHERE person = ?1 AND action IN ('login', 'login-failed')
             ORDER BY log_index DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![to_i64(person), to_i64(limit as u64)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push((
                r.get::<_, String>(0)? == AccessAction::Login.as_str(),
                parse_db_time(&r.get::<_, String>(1)?)?,
            ));
        }
        Ok(out)
    }

    /// The access events `query` selects, in log order.
    ///
    /// # Errors
    /// SQL failure or a stored record that no longer parses.
    pub fn access_events(
        &self,
        query: &AccessQuery,
    ) -> Result<Vec<LedgerAccessEvent>, LedgerError> {
        let mut filter = String::from("1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |filter: &mut String, sql: &str, v: rusqlite::types::Value| {
            args.push(v);
            filter.push_str(&sql.replace('?', &format!("?{}", args.len())));
        };
        if let Some(case) = &query.case {
            arg(&mut filter, " AND e.case_number = ?", case.clone().into());
        }
        if let Some(person) = query.person {
            arg(&mut filter, " AND e.person = ?", to_i64(person).into());
        }
        if let Some(request) = query.request {
            arg(&mut filter, " AND e.request = ?", to_i64(request).into());
        }
        if let Some(clip) = &query.clip {
            arg(
                &mut filter,
                " AND e.record_hash IN (SELECT event FROM access_event_records WHERE record_hash = ?)",
                clip.0.to_vec().into(),
            );
        }
        // The newest N are chosen on the events table, then put back in log order.
        let newest = query.newest.map_or_else(String::new, |n| {
            format!(
                " AND e.log_index IN (SELECT e.log_index FROM access_events e WHERE {filter}
                                       ORDER BY e.log_index DESC LIMIT {n})"
            )
        });
        let mut stmt = self.conn.prepare(&format!(
            "SELECT e.log_index, e.record_hash, e.at, s.bytes
             FROM access_events e JOIN station_records s ON s.hash = e.record_hash
             WHERE {filter}{newest} ORDER BY e.log_index"
        ))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let body: custody::StationRecordBody = serde_json::from_slice(&r.get::<_, Vec<u8>>(3)?)
                .map_err(|e| LedgerError::Invalid(format!("stored access event: {e}")))?;
            let custody::StationFact::Access(fact) = body.fact else {
                return Err(LedgerError::Invalid(
                    "an access event row points at another kind of record".into(),
                ));
            };
            out.push(LedgerAccessEvent {
                log_index: r.get::<_, i64>(0)?.unsigned_abs(),
                record: record_hash(&r.get::<_, Vec<u8>>(1)?)?,
                at: parse_db_time(&r.get::<_, String>(2)?)?,
                fact,
            });
        }
        Ok(out)
    }

    /// The request with id `id`.
    ///
    /// # Errors
    /// SQL failure.
    pub fn request(&self, id: u64) -> Result<Option<LedgerRequest>, LedgerError> {
        Ok(self.requests_where("q.id = ?1", Some(id))?.pop())
    }

    /// Every request, newest first.
    ///
    /// # Errors
    /// SQL failure.
    pub fn requests(&self) -> Result<Vec<LedgerRequest>, LedgerError> {
        let mut all = self.requests_where("1 = 1", None)?;
        all.reverse();
        Ok(all)
    }

    /// The ids of `limit` requests from the `offset`-th newest, and how many there are.
    ///
    /// # Errors
    /// SQL failure.
    pub fn newest_requests(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<u64>, usize), LedgerError> {
        let total: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM requests ORDER BY id DESC LIMIT ?1 OFFSET ?2")?;
        let ids = stmt
            .query_map([to_i64(limit as u64), to_i64(offset as u64)], |r| {
                r.get::<_, i64>(0)
            })?
            .map(|id| id.map(i64::unsigned_abs))
            .collect::<Result<_, _>>()?;
        Ok((ids, usize::try_from(total).unwrap_or(0)))
    }

    fn requests_where(
        &self,
        filter: &str,
        id: Option<u64>,
    ) -> Result<Vec<LedgerRequest>, LedgerError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT q.id, s.log_index, s.bytes, s.sig, q.requested_at
             FROM requests q JOIN station_records s ON s.hash = q.record_hash
             WHERE {filter} ORDER BY q.id"
        ))?;
        let mut rows = match id {
            Some(id) => stmt.query([to_i64(id)])?,
            None => stmt.query([])?,
        };
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id = r.get::<_, i64>(0)?.unsigned_abs();
            out.push(LedgerRequest {
                id,
                record: ShippedRecord {
                    serial: None,
                    seq: id,
                    log_index: r.get::<_, i64>(1)?.unsigned_abs(),
                    bytes: r.get(2)?,
                    sig: r.get(3)?,
                },
                at: parse_db_time(&r.get::<_, String>(4)?)?,
            });
        }
        Ok(out)
    }

    /// The decisions on request `id`, in the order they were made.
    ///
    /// # Errors
    /// SQL failure.
    pub fn decisions(&self, id: u64) -> Result<Vec<ShippedRecord>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.seq, s.log_index, s.bytes, s.sig
             FROM decisions d JOIN station_records s ON s.hash = d.record_hash
             WHERE d.request = ?1 ORDER BY s.log_index",
        )?;
        let rows = stmt.query_map([to_i64(id)], super::cases::shipped_station_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The station record with hash `hash`.
    ///
    /// # Errors
    /// SQL failure.
    pub fn station_record(&self, hash: &RecordHash) -> Result<Option<ShippedRecord>, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, log_index, bytes, sig FROM station_records WHERE hash = ?1",
                [&hash.0[..]],
                super::cases::shipped_station_record,
            )
            .optional()?)
    }

    /// Every device record about the clips `clips` (by their record hashes): the clip
    /// records, their bindings and their annotations, in log order.
    ///
    /// # Errors
    /// SQL failure or a stored annotation that no longer parses.
    pub fn clip_device_records(
        &self,
        clips: &[RecordHash],
    ) -> Result<Vec<ShippedRecord>, LedgerError> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT r.serial, r.seq, r.log_index, r.kind, r.bytes, r.sig FROM records r
             WHERE r.hash = ?1
                OR r.hash IN (SELECT record_hash FROM bindings WHERE subject = ?1)
                OR (r.kind = 'annotation'
                    AND r.serial = (SELECT serial FROM clips WHERE record_hash = ?1))
             ORDER BY r.log_index",
        )?;
        for clip in clips {
            let mut rows = stmt.query([&clip.0[..]])?;
            while let Some(r) = rows.next()? {
                let record = ShippedRecord {
                    serial: Some(r.get(0)?),
                    seq: r.get::<_, i64>(1)?.unsigned_abs(),
                    log_index: r.get::<_, i64>(2)?.unsigned_abs(),
                    bytes: r.get(4)?,
                    sig: r.get(5)?,
                };
                if r.get::<_, String>(3)? == "annotation" {
                    let rec = custody::Record::parse(record.bytes.clone())
                        .map_err(|e| LedgerError::Invalid(format!("stored annotation: {e}")))?;
                    match &rec.body().fact {
                        custody::Fact::Annotation(a) if a.subject == *clip => {}
                        _ => continue,
                    }
                }
                out.push(record);
            }
        }
        out.sort_by_key(|r| r.log_index);
        out.dedup_by_key(|r| r.log_index);
        Ok(out)
    }

    /// Access rows that disagree with the station records they index: an access event,
    /// request or decision record without its row, or a row without its record. Calls
    /// `each(leaf index or row, what is wrong)`.
    ///
    /// # Errors
    /// SQL failure.
    pub fn access_mismatches(
        &self,
        mut each: impl FnMut(u64, &'static str),
    ) -> Result<(), LedgerError> {
        let checks: [(&str, &'static str); 4] = [
            (
                "SELECT s.log_index FROM station_records s WHERE s.kind = 'access'
                   AND s.hash NOT IN (SELECT record_hash FROM access_events)",
                "an access event in the log is missing from the ledger's access events",
            ),
            (
                "SELECT e.log_index FROM access_events e
                   WHERE e.record_hash NOT IN (SELECT hash FROM station_records WHERE kind = 'access')",
                "an access event in the ledger has no record in the log",
            ),
            (
                "SELECT s.log_index FROM station_records s WHERE s.kind = 'request'
                   AND s.hash NOT IN (SELECT record_hash FROM requests)",
                "a request in the log is missing from the ledger's requests",
            ),
            (
                "SELECT s.log_index FROM station_records s WHERE s.kind = 'decision'
                   AND s.hash NOT IN (SELECT record_hash FROM decisions)",
                "a decision in the log is missing from the ledger's decisions",
            ),
        ];
        for (sql, why) in checks {
            let mut stmt = self.conn.prepare(sql)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                each(r.get::<_, i64>(0)?.unsigned_abs(), why);
            }
        }
        Ok(())
    }
}

/// Indexes an access event committed as a station record.
pub(super) fn insert_access_event(
    tx: &rusqlite::Transaction<'_>,
    hash: &RecordHash,
    log_index: u64,
    a: &AccessFact,
    now: &str,
) -> Result<usize, LedgerError> {
    tx.execute(
        "INSERT INTO access_events (record_hash, log_index, action, person, role, case_number, request, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            &hash.0[..],
            to_i64(log_index),
            a.action.as_str(),
            a.person.map(to_i64),
            a.role.map(Role::as_str),
            a.case_number,
            a.request.map(to_i64),
            now
        ],
    )?;
    let mut stmt = tx.prepare(
        "INSERT OR IGNORE INTO access_event_records (event, record_hash) VALUES (?1, ?2)",
    )?;
    for record in &a.records {
        stmt.execute(params![&hash.0[..], &record.0[..]])?;
    }
    Ok(1)
}

/// Indexes a request committed as a station record; its id is the record's seq.
pub(super) fn insert_request(
    tx: &rusqlite::Transaction<'_>,
    hash: &RecordHash,
    seq: u64,
    r: &RequestFact,
    now: &str,
) -> Result<usize, LedgerError> {
    Ok(tx.execute(
        "INSERT INTO requests (id, record_hash, requester, role, case_number, form, outside, sensitive, requested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            to_i64(seq),
            &hash.0[..],
            to_i64(r.requester),
            r.role.as_str(),
            r.case_number,
            r.form.as_str(),
            r.outside,
            r.sensitive,
            now
        ],
    )?)
}

/// Indexes a decision committed as a station record.
pub(super) fn insert_decision(
    tx: &rusqlite::Transaction<'_>,
    hash: &RecordHash,
    d: &DecisionFact,
    now: &str,
) -> Result<usize, LedgerError> {
    Ok(tx.execute(
        "INSERT INTO decisions (record_hash, request, approver, role, approved, decided_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            &hash.0[..],
            to_i64(d.request),
            to_i64(d.approver),
            d.role.as_str(),
            d.approved,
            now
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use custody::{SigningKey, StationFact};

    use super::*;

    fn export(request: u64) -> StationFact {
        StationFact::Access(AccessFact {
            action: AccessAction::Export,
            person: Some(1),
            role: Some(Role::Clerk),
            case_number: None,
            records: vec![RecordHash::of(b"clip")],
            query: None,
            request: Some(request),
            approvals: vec![],
        })
    }

    #[test]
    fn a_second_export_under_one_request_is_refused_by_the_ledger_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let key = SigningKey::generate().unwrap().0;
        let created = Utc::now().fixed_offset();
        ledger
            .commit_station_fact(export(7), &key, "test/station", created)
            .unwrap();
        // Two exports that both passed their checks: the second never commits.
        assert!(
            ledger
                .commit_station_fact(export(7), &key, "test/station", created)
                .is_err()
        );
        ledger
            .commit_station_fact(export(8), &key, "test/station", created)
            .unwrap();
        let exports = ledger.access_events(&AccessQuery::default()).unwrap().len();
        assert_eq!(exports, 2);
    }
}
