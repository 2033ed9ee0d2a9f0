//! Supervised access (调阅监督) and export only with approval: people and roles, logins
//! with lockout, access events in the log before any content, requests decided under the
//! matrix of shared/reference/supervision.md, export packages that verify alone. Each
//! invariant of the reference has a test here that fails if it breaks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a test reports failure by panicking, and tells its story in order"
)]

use std::fs;
use std::path::Path;

use chrono::Duration;
use custody::{
    AccessAction, BindingFact, DiscOwnKeys, ExportForm, Fact, NoteVerifier, Role, StationFact,
    StationRecordBody, TlogProof, check_disc_folder,
};
use custody_station::{AccessQuery, Credential, DockOptions, NewRequest, RequestState};

mod disc_tools;
use disc_tools::{extract, run_readme};

mod agency;
use agency::{Agency, CASE, PASSWORD, PEOPLE};

#[test]
fn an_export_needs_the_heads_of_the_collecting_departments_and_verifies_alone() {
    let ag = Agency::open();
    let clerk = ag.login("lisi", None);
    let id = ag.request(&clerk, true, &[], (false, false));
    let status = ag.station.request_status(id).unwrap();
    // The case's clips come from 治安大队 (张三, 郑十) and 交警大队 (王五).
    assert_eq!(status.fact.records.len(), 3);
    let needs: Vec<String> = status
        .needs
        .iter()
        .map(custody_station::Requirement::zh)
        .collect();
    assert_eq!(needs, ["交警大队部门负责人", "治安大队部门负责人"]);
    assert_eq!(status.state, RequestState::Pending);

    // Invariant 1: the head of 治安大队 who recorded a clip in the request cannot approve.
    let zheng = ag.login("zheng", Some(Role::DepartmentHead));
    assert!(ag.decide_err(&zheng, id).contains("you recorded clip"));
    // Invariant 3: IT never approves, even holding a head's role.
    let wu = ag.login("wu", Some(Role::DepartmentHead));
    assert!(ag.decide_err(&wu, id).contains("IT"));
    // A role that does not approve, and a clerk.
    assert!(
        ag.decide_err(&ag.login("zhou", None), id)
            .contains("refused")
    );
    assert!(ag.decide_err(&clerk, id).contains("refused"));

    let zhao = ag.login("zhao", None);
    let after_one = ag.station.decide(&zhao, id, true, None, 7).unwrap();
    assert_eq!(after_one.state, RequestState::Pending);
    assert_eq!(after_one.missing.len(), 1);
    // Half approved: no copy yet.
    let err = ag.station.export(&clerk, id, &ag.exports()).unwrap_err();
    assert!(format!("{err:#}").contains("待审批"), "{err:#}");
    assert!(!ag.exports().exists());
    // The same head twice does not make two approvals.
    assert!(ag.decide_err(&zhao, id).contains("already decided"));

    let qian = ag.login("qian", None);
    let approved = ag.station.decide(&qian, id, true, None, 7).unwrap();
    assert_eq!(approved.state, RequestState::Approved);
    // Invariant 2: each approval names the exact clip records and an expiry.
    for (_, d) in &approved.decisions {
        assert_eq!(d.records, approved.fact.records);
        assert_eq!(
            d.expires.unwrap().with_timezone(&chrono::Utc),
            ag.station.now() + Duration::days(7)
        );
    }
    // Only the requester uses the approval.
    let err = ag
        .station
        .export(&ag.login("wangwu", None), id, &ag.exports())
        .unwrap_err();
    assert!(format!("{err:#}").contains("only the requester"), "{err:#}");

    let done = ag.station.export(&clerk, id, &ag.exports()).unwrap();
    assert_eq!(done.clips, 3);
    assert!(
        done.image.as_ref().unwrap().exists(),
        "the package form has an ISO image"
    );
    // The package verifies alone: the court's own check and its README's commands.
    let check = check_disc_folder(&done.folder, &DiscOwnKeys::new(&done.folder, &[])).unwrap();
    assert!(check.is_intact(), "{:#?}", check.problems);
    assert_eq!(check.package, Some(id));
    let out = run_readme(&done.folder);
    assert!(out.status.success(), "{out:?}");
    // So does the ISO image carried to the court, read as its machine reads it.
    let carried = extract(done.image.as_ref().unwrap());
    let check = check_disc_folder(carried.path(), &DiscOwnKeys::new(carried.path(), &[])).unwrap();
    assert!(check.is_intact(), "{:#?}", check.problems);
    // Invariant 4: request, decisions and export are leaves, shipped with their proofs.
    let kinds = shipped_station_facts(&done.folder);
    assert_eq!(kinds.iter().filter(|k| *k == "request").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "decision").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "export").count(), 1);
    let proofs = fs::read_dir(done.folder.join("proofs")).unwrap().count();
    let records = fs::read_dir(done.folder.join("station-records"))
        .unwrap()
        .count()
        / 2;
    assert!(
        proofs >= records + 3,
        "{proofs} proofs for {records} station records"
    );

    // Used once.
    let err = ag.station.export(&clerk, id, &ag.exports()).unwrap_err();
    assert!(format!("{err:#}").contains("已使用"), "{err:#}");

    // Oversight reads who copied what, each event with a proof that verifies.
    let zhou = ag.login("zhou", None);
    let log = ag
        .station
        .access_log(
            &zhou,
            &AccessQuery {
                request: Some(id),
                ..AccessQuery::default()
            },
        )
        .unwrap();
    assert_eq!(log.len(), 1);
    // The newest few, in log order, are the tail of the whole.
    let whole = ag
        .station
        .ledger()
        .access_events(&AccessQuery::default())
        .unwrap();
    let tail = ag
        .station
        .ledger()
        .access_events(&AccessQuery {
            newest: Some(3),
            ..AccessQuery::default()
        })
        .unwrap();
    let at = |v: &[custody_station::LedgerAccessEvent]| {
        v.iter().map(|e| e.log_index).collect::<Vec<_>>()
    };
    assert!(whole.len() > 3);
    assert_eq!(at(&tail), at(&whole[whole.len() - 3..]));
    let event = &log[0];
    assert_eq!(event.event.fact.action, AccessAction::Export);
    assert_eq!(event.login.as_deref(), Some("lisi"));
    assert_eq!(event.event.fact.approvals.len(), 2);
    let bytes = ag
        .station
        .ledger()
        .station_record(&event.event.record)
        .unwrap()
        .unwrap()
        .bytes;
    let proof = TlogProof::parse(event.proof.as_bytes()).unwrap();
    let verifier: &NoteVerifier = ag.station.verifier();
    proof
        .verify(&bytes, "test.example/station-01", verifier, &[])
        .unwrap();
    // An officer does not read the access log.
    let zhangsan = ag.login("zhangsan", None);
    assert!(
        ag.station
            .access_log(&zhangsan, &AccessQuery::default())
            .is_err()
    );
}

/// The kinds of the station records a package carries (`export` for its export event).
fn shipped_station_facts(folder: &Path) -> Vec<String> {
    let mut kinds = Vec::new();
    for entry in fs::read_dir(folder.join("station-records")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let body: StationRecordBody =
                serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            kinds.push(match body.fact {
                StationFact::Access(a) if a.action == AccessAction::Export => "export".into(),
                other => other.kind().to_owned(),
            });
        }
    }
    kinds
}

#[test]
fn a_request_is_never_approved_by_its_requester_or_it() {
    let ag = Agency::open();
    // The head of 治安大队 asks for a copy of his own department's clip.
    let zhao = ag.login("zhao", None);
    let id = ag.request(&zhao, false, &[ag.clip_a1()], (false, false));
    assert!(ag.decide_err(&zhao, id).contains("不能审批自己的申请"));
    // IT holding the head's role of the same department: refused.
    let wu = ag.login("wu", Some(Role::DepartmentHead));
    assert!(ag.decide_err(&wu, id).contains("IT"));
    // IT acting as IT: no requests for footage, no approvals, no exports.
    let it = ag.login("wu", Some(Role::It));
    assert!(ag.decide_err(&it, id).contains("IT"));
    assert!(
        ag.station
            .make_request(
                &it,
                &NewRequest {
                    case: Some(CASE),
                    clips: &[],
                    purpose: "维护",
                    form: ExportForm::Copy,
                    destination: "机房",
                    outside: false,
                    sensitive: false,
                },
            )
            .is_err()
    );
    assert!(ag.station.export(&it, id, &ag.exports()).is_err());
    // The head of another department fills nothing.
    assert!(
        ag.decide_err(&ag.login("qian", None), id)
            .contains("needs the approval of")
    );
    // The agency head stands in for the department head.
    let sun = ag.login("sun", None);
    let status = ag.station.decide(&sun, id, true, None, 7).unwrap();
    assert_eq!(status.state, RequestState::Approved);
    let done = ag.station.export(&zhao, id, &ag.exports()).unwrap();
    assert_eq!(done.clips, 1);
}

#[test]
fn outside_the_agency_the_agency_head_approves_too_and_sensitive_footage_needs_a_second() {
    let ag = Agency::open();
    let clerk = ag.login("lisi", None);
    let id = ag.request(&clerk, false, &[ag.clip_a1()], (true, true));
    let needs: Vec<String> = ag
        .station
        .request_status(id)
        .unwrap()
        .needs
        .iter()
        .map(custody_station::Requirement::zh)
        .collect();
    assert_eq!(needs, ["治安大队部门负责人", "单位负责人", "单位负责人"]);
    // The department head approves for his department; outside, that is not enough.
    let zhao = ag.login("zhao", None);
    let one = ag.station.decide(&zhao, id, true, None, 7).unwrap();
    assert_eq!(one.state, RequestState::Pending);
    assert!(one.missing.iter().all(|r| r.role == Role::AgencyHead));
    let sun = ag.login("sun", None);
    let one = ag.station.decide(&sun, id, true, None, 7).unwrap();
    assert_eq!(
        one.state,
        RequestState::Pending,
        "sensitive: a second approval"
    );
    assert!(ag.decide_err(&sun, id).contains("already decided"));
    let ma = ag.login("ma", None);
    let two = ag.station.decide(&ma, id, true, None, 7).unwrap();
    assert_eq!(two.state, RequestState::Approved);

    // Sensitive inside the agency: the department head, then an agency head.
    let inside = ag.request(&clerk, false, &[ag.clip_a1()], (false, true));
    let first = ag.station.decide(&zhao, inside, true, None, 7).unwrap();
    assert_eq!(first.missing.len(), 1);
    assert_eq!(first.missing[0].role, Role::AgencyHead);
    let second = ag.station.decide(&sun, inside, true, None, 7).unwrap();
    assert_eq!(second.state, RequestState::Approved);

    // A rejection needs its reason and ends the request.
    let rejected = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    assert!(ag.station.decide(&zhao, rejected, false, None, 7).is_err());
    let status = ag
        .station
        .decide(&zhao, rejected, false, Some("事由不充分"), 7)
        .unwrap();
    assert_eq!(status.state, RequestState::Rejected);
    assert!(ag.station.export(&clerk, rejected, &ag.exports()).is_err());
}

#[test]
fn an_approval_expires_covers_only_its_request_and_only_the_clips_it_names() {
    let mut ag = Agency::open();
    let clerk = ag.login("lisi", None);
    let zhao = ag.login("zhao", None);
    let qian = ag.login("qian", None);
    // Approval of another request does not carry over.
    let first = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    let second = ag.request(&clerk, false, &[ag.clip_a2()], (false, false));
    ag.station.decide(&zhao, first, true, None, 7).unwrap();
    let err = ag
        .station
        .export(&clerk, second, &ag.exports())
        .unwrap_err();
    assert!(format!("{err:#}").contains("待审批"), "{err:#}");

    // A whole case approved, then another clip bound to the case: the export holds the
    // approved clips only.
    let case = ag.request(&clerk, true, &[], (false, false));
    ag.station.decide(&zhao, case, true, None, 7).unwrap();
    ag.station.decide(&qian, case, true, None, 7).unwrap();
    let a2 = ag.a.records().nth(1).unwrap().hash();
    ag.a.add_fact(Fact::Binding(BindingFact {
        subject: a2,
        case_number: CASE.into(),
        number: format!("{CASE}-视-004"),
    }))
    .unwrap();
    ag.station
        .ingest_slot(&ag.a.root, &DockOptions::default())
        .unwrap();
    let done = ag.station.export(&clerk, case, &ag.exports()).unwrap();
    assert_eq!(
        done.clips, 3,
        "the clip bound after the approval is not in it"
    );
    let check = check_disc_folder(&done.folder, &DiscOwnKeys::new(&done.folder, &[])).unwrap();
    assert!(check.is_intact(), "{:#?}", check.problems);

    // An export's image is its requester's to download until the approval expires, and
    // only once it is written; each download is an access event.
    let taken = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    let err = ag
        .station
        .open_export_image(&clerk, taken, &ag.exports())
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("no export to download"),
        "{err:#}"
    );
    ag.station.decide(&zhao, taken, true, None, 1).unwrap();
    ag.station
        .export_with_image(&clerk, taken, &ag.exports())
        .unwrap();
    assert!(
        ag.station
            .open_export_image(&zhao, taken, &ag.exports())
            .is_err()
    );
    let (image, _) = ag
        .station
        .open_export_image(&clerk, taken, &ag.exports())
        .unwrap();
    assert_eq!(image, ag.exports().join(format!("RQ{taken:06}.iso")));
    let logged = |id| {
        ag.station
            .ledger()
            .access_events(&AccessQuery {
                request: Some(id),
                ..AccessQuery::default()
            })
            .unwrap()
            .iter()
            .filter(|e| e.fact.action == AccessAction::Download)
            .count()
    };
    assert_eq!(logged(taken), 1);
    ag.clock.set(ag.station.now() + Duration::days(2));
    let err = ag
        .station
        .open_export_image(&clerk, taken, &ag.exports())
        .unwrap_err();
    assert!(format!("{err:#}").contains("expired"), "{err:#}");
    assert_eq!(logged(taken), 1, "a refused download is not logged as one");

    // An approval past its expiry is refused.
    let late = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    ag.station.decide(&zhao, late, true, None, 1).unwrap();
    ag.clock.set(ag.station.now() + Duration::days(2));
    let err = ag.station.export(&clerk, late, &ag.exports()).unwrap_err();
    assert!(format!("{err:#}").contains("已过期"), "{err:#}");

    // The request's clip list changed behind the station after its approval: the request
    // no longer verifies, nothing is exported.
    let changed = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    let zhao = ag.login("zhao", None);
    ag.station.decide(&zhao, changed, true, None, 7).unwrap();
    let db = rusqlite::Connection::open(ag.dir.path().join("data/ledger.sqlite")).unwrap();
    let a1 = ag.a.records().next().unwrap().hash().to_string();
    db.execute_batch(&format!(
        "DROP TRIGGER station_records_no_update;
         UPDATE station_records SET bytes = CAST(REPLACE(CAST(bytes AS TEXT), '{a1}', '{a2}') AS BLOB)
         WHERE seq = {changed};"
    ))
    .unwrap();
    let err = ag
        .station
        .export(&clerk, changed, &ag.exports())
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not verify"), "{err:#}");
    assert!(!ag.exports().join(format!("RQ{changed:06}")).exists());
}

#[test]
fn when_the_access_event_cannot_be_written_nothing_is_served() {
    let ag = Agency::open();
    let clerk = ag.login("lisi", None);
    let zhangsan = ag.login("zhangsan", None);
    let id = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    ag.station
        .decide(&ag.login("zhao", None), id, true, None, 7)
        .unwrap();
    // The ledger refuses access events (a full disk, a broken database): SQLite aborts
    // the insert.
    let db = rusqlite::Connection::open(ag.dir.path().join("data/ledger.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_access BEFORE INSERT ON access_events
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    assert!(ag.station.case_view(&clerk, CASE).is_err());
    assert!(
        ag.station
            .open_clip(&zhangsan, &ag.clip_a1(), None)
            .is_err()
    );
    assert!(ag.station.export(&clerk, id, &ag.exports()).is_err());
    assert!(
        !ag.exports().join(format!("RQ{id:06}")).exists(),
        "no package without its export event"
    );
    // The failed export did not use the approval: once the ledger takes events again,
    // the export goes through.
    assert_eq!(
        ag.station.request_status(id).unwrap().state,
        RequestState::Approved
    );
    db.execute_batch("DROP TRIGGER refuse_access;").unwrap();
    ag.station.export(&clerk, id, &ag.exports()).unwrap();
}

#[test]
fn officers_see_their_own_clips_it_sees_none_and_every_playback_is_logged_first() {
    let ag = Agency::open();
    let zhangsan = ag.login("zhangsan", None);
    let view = ag.station.case_view(&zhangsan, CASE).unwrap();
    assert_eq!(view.clips.len(), 1, "一人一档: only his own clip");
    assert_eq!(view.hidden, 2);
    assert_eq!(view.clips[0].officer_cert, "42060119001");
    let it = ag.login("wu", Some(Role::It));
    assert!(ag.station.case_view(&it, CASE).is_err());
    assert!(ag.station.open_clip(&it, &ag.clip_a1(), None).is_err());
    let now = ag.station.now();
    assert!(
        ag.station
            .report_for(&it, &custody_station::ReportQuery::default(), now)
            .is_err()
    );

    // His own clip plays, bytes as recorded.
    let (row, mut reader) = ag
        .station
        .open_clip(&zhangsan, &ag.clip_a1(), None)
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap();
    assert_eq!(bytes, fs::read(ag.a.root.join(&row.file)).unwrap());
    // Another officer's: refused, until a view request of his is approved.
    let wangwu = ag.login("wangwu", None);
    let err = ag
        .station
        .open_clip(&wangwu, &ag.clip_a1(), None)
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("view request"), "{err:#}");
    let view_id = ag.request_form(
        &wangwu,
        false,
        &[ag.clip_a1()],
        (false, false),
        ExportForm::View,
    );
    assert!(
        ag.station
            .open_clip(&wangwu, &ag.clip_a1(), Some(view_id))
            .is_err()
    );
    ag.station
        .decide(&ag.login("zhao", None), view_id, true, None, 7)
        .unwrap();
    ag.station
        .open_clip(&wangwu, &ag.clip_a1(), Some(view_id))
        .unwrap();
    // A view request gives nothing to export.
    assert!(ag.station.export(&wangwu, view_id, &ag.exports()).is_err());
    // A department head plays his department's footage, not another's.
    let qian = ag.login("qian", None);
    ag.station
        .open_clip(&qian, &format!("{CASE}-视-002"), None)
        .unwrap();
    assert!(ag.station.open_clip(&qian, &ag.clip_a1(), None).is_err());

    // Who played the clip: oversight sees both playbacks, the second under the request.
    let zhou = ag.login("zhou", None);
    let a1 = ag.station.find_clip(&ag.clip_a1()).unwrap();
    let log = ag
        .station
        .access_log(
            &zhou,
            &AccessQuery {
                clip: Some(a1),
                ..AccessQuery::default()
            },
        )
        .unwrap();
    let plays: Vec<(Option<String>, Option<u64>)> = log
        .iter()
        .filter(|e| e.event.fact.action == AccessAction::Playback)
        .map(|e| (e.login.clone(), e.event.fact.request))
        .collect();
    assert_eq!(
        plays,
        [
            (Some("zhangsan".into()), None),
            (Some("wangwu".into()), Some(view_id))
        ]
    );
    // The case views that showed the clip are there too.
    assert!(
        log.iter()
            .any(|e| e.event.fact.action == AccessAction::CaseView)
    );
}

#[test]
fn repeated_failed_logins_lock_an_account_and_every_attempt_is_logged() {
    let ag = Agency::open();
    for _ in 0..custody_station::LOCKOUT_FAILURES {
        let err = ag
            .station
            .login("lisi", Credential::Password("wrong-password!"), None)
            .unwrap_err();
        assert!(err.to_string().contains("账号或密码错误"), "{err}");
    }
    let err = ag
        .station
        .login("lisi", Credential::Password(PASSWORD), None)
        .unwrap_err();
    assert!(err.to_string().contains("已锁定"), "{err}");
    ag.clock
        .set(ag.station.now() + Duration::minutes(custody_station::LOCKOUT_MINUTES + 1));
    ag.login("lisi", None);
    // An unknown login is refused as a wrong password is.
    let err = ag
        .station
        .login("nobody", Credential::Password(PASSWORD), None)
        .unwrap_err();
    assert!(err.to_string().contains("账号或密码错误"), "{err}");
    // A disabled account, and a role not held.
    ag.station.set_disabled("lisi", true).unwrap();
    assert!(
        ag.station
            .login("lisi", Credential::Password(PASSWORD), None)
            .is_err()
    );
    ag.station.set_disabled("lisi", false).unwrap();
    assert!(
        ag.station
            .login(
                "lisi",
                Credential::Password(PASSWORD),
                Some(Role::AgencyHead)
            )
            .is_err()
    );
    // A person with several roles says which.
    assert!(
        ag.station
            .login("zheng", Credential::Password(PASSWORD), None)
            .is_err()
    );
    // Every attempt is an access event: six failures, a lockout refusal, a success for
    // lisi, then the disabled and role refusals.
    let lisi = ag.station.person("lisi").unwrap();
    let zhou = ag.login("zhou", None);
    let log = ag
        .station
        .access_log(
            &zhou,
            &AccessQuery {
                person: Some(lisi.id),
                ..AccessQuery::default()
            },
        )
        .unwrap();
    let actions: Vec<AccessAction> = log.iter().map(|e| e.event.fact.action).collect();
    let failed = actions
        .iter()
        .filter(|a| **a == AccessAction::LoginFailed)
        .count();
    assert_eq!(failed, custody_station::LOCKOUT_FAILURES + 3, "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == AccessAction::Login)
            .count(),
        1
    );
    // A password change takes effect; a short one is refused.
    assert!(ag.station.set_password("lisi", "short").is_err());
    ag.station
        .set_password("lisi", "another-long-password")
        .unwrap();
    assert!(
        ag.station
            .login("lisi", Credential::Password(PASSWORD), None)
            .is_err()
    );
    ag.station
        .login("lisi", Credential::Password("another-long-password"), None)
        .unwrap();
}

#[test]
fn leaves_name_people_by_id_and_an_audit_finds_an_access_event_removed_by_hand() {
    let ag = Agency::open();
    let clerk = ag.login("lisi", None);
    ag.station.case_view(&clerk, CASE).unwrap();
    let id = ag.request(&clerk, false, &[ag.clip_a1()], (false, false));
    ag.station
        .decide(&ag.login("zhao", None), id, true, None, 7)
        .unwrap();
    ag.station.export(&clerk, id, &ag.exports()).unwrap();
    // Invariant 6: no access event, request or decision names a person or login.
    let db = rusqlite::Connection::open(ag.dir.path().join("data/ledger.sqlite")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT bytes FROM station_records WHERE kind IN ('access', 'request', 'decision')",
        )
        .unwrap();
    let leaves: Vec<String> = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| String::from_utf8(b.unwrap()).unwrap())
        .collect();
    assert!(leaves.len() >= 6, "{}", leaves.len());
    for leaf in &leaves {
        for (login, name, ..) in PEOPLE {
            assert!(
                !leaf.contains(&format!("\"{login}\"")) && !leaf.contains(name),
                "{login}/{name} named in a leaf:\n{leaf}"
            );
        }
    }
    let clean = custody_station::audit(&ag.station, None).unwrap();
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    // Someone removes the export event from the ledger's access events by hand.
    db.execute_batch(
        "DROP TRIGGER access_events_no_delete; DROP TRIGGER access_event_records_no_delete;
         DELETE FROM access_event_records WHERE event IN
             (SELECT record_hash FROM access_events WHERE action = 'export');
         DELETE FROM access_events WHERE action = 'export';",
    )
    .unwrap();
    let found = custody_station::audit(&ag.station, None).unwrap();
    assert!(
        found
            .findings
            .iter()
            .any(|f| f.detail.contains("missing from the ledger's access events")),
        "{:#?}",
        found.findings
    );
}

/// Runs the station binary with `args`, the password on stdin.
fn shell(config: &Path, args: &[&str], password: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_custody-station"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "{password}");
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn the_supervision_commands_work_from_a_shell_with_passwords_never_in_argv() {
    let ag = Agency::open();
    let config = ag.dir.path().join("station.toml");
    fs::write(
        &config,
        format!(
            "dock-root = \"dock\"\ndata-dir = \"data\"\norigin = \"test.example/station-01\"\n\
             reserve-bytes = 0\nnumbering = \"{}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config/numbering.example.toml")
                .display()
        ),
    )
    .unwrap();
    drop(ag.station);
    let pw = ["--password-fd", "0"];
    let with = |args: &[&str], login: &str| -> Vec<String> {
        args.iter()
            .map(ToString::to_string)
            .chain(["--as".into(), login.into()])
            .chain(pw.iter().map(ToString::to_string))
            .collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        shell(&config, &refs, PASSWORD)
    };
    let out = shell(
        &config,
        &[
            "user",
            "add",
            "chen",
            "--name",
            "陈内勤",
            "--department",
            "法制大队",
            "--role",
            "clerk",
            "--password-fd",
            "0",
        ],
        "another-good-password",
    );
    assert!(out.status.success(), "{out:?}");
    let out = shell(&config, &["--json", "user", "list"], "");
    let people: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(people.as_array().unwrap().len(), PEOPLE.len() + 1);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("argon2"));

    let out = run(with(
        &[
            "--json",
            "request",
            "--case",
            "襄环罚(2019)75号",
            "--purpose",
            "移送起诉",
            "--form",
            "package",
            "--to",
            "某某区人民法院",
            "--outside",
        ],
        "lisi",
    ));
    assert!(out.status.success(), "{out:?}");
    let req: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = req["id"].as_u64().unwrap().to_string();
    assert_eq!(req["state"], "pending");
    // Self-approval: refused, exit 2, the reason in Chinese.
    let out = run(with(&["approve", &id], "lisi"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    for head in ["zhao", "qian"] {
        let out = run(with(&["approve", &id], head));
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("尚需"),
            "{out:?}"
        );
    }
    let out = run(with(&["approve", &id], "sun"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("已批准"),
        "{out:?}"
    );
    let out = run(with(&["requests"], "zhou"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("移送起诉"),
        "{out:?}"
    );
    let exports = ag.dir.path().join("out");
    let out = run(with(
        &["export", &id, "--out", exports.to_str().unwrap()],
        "lisi",
    ));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("导出包") && text.contains("custody verify"),
        "{text}"
    );
    // A wrong password: exit 2, nothing served.
    let out = shell(
        &config,
        &with(&["case", CASE], "lisi")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "wrong-password!",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    // Playback into a file, then oversight reads who did what.
    let copy = ag.dir.path().join("played.mp4");
    let out = run(with(
        &[
            "play",
            &format!("{CASE}-视-001"),
            "--out",
            copy.to_str().unwrap(),
        ],
        "zhangsan",
    ));
    assert!(out.status.success(), "{out:?}");
    assert!(fs::metadata(&copy).unwrap().len() > 0);
    let out = run(with(&["--json", "access", "--case", CASE], "zhou"));
    assert!(out.status.success(), "{out:?}");
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"export") && actions.contains(&"playback"),
        "{actions:?}"
    );
    assert!(
        log[0]["proof"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1")
    );
    let out = run(with(&["access", "--person", "zhangsan"], "zhou"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("播放"),
        "{out:?}"
    );
}
