//! An export package checked by the court's own tool: `custody verify` on the package
//! folder checks it as a disc and also that its request, approval and export records
//! agree with the clips it holds; a package whose approval was taken out (its sums
//! rewritten to match) fails, naming why.

use std::fs;

use custody::{ExportForm, Role};
use custody_station::{NewPerson, NewRequest};

use crate::disc::{CASE, bound_case_station, person};
use crate::util::{arg, custody};

#[test]
fn custody_verify_checks_a_package_and_its_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (station, clerk) = bound_case_station(dir.path());
    let head = person(
        &station,
        &NewPerson {
            login: "sun",
            name: "孙局",
            department: "局领导",
            badge: None,
            roles: &[Role::AgencyHead],
        },
    );
    let id = station
        .make_request(
            &clerk,
            &NewRequest {
                case: Some(CASE),
                clips: &[],
                purpose: "移送起诉",
                form: ExportForm::Copy,
                destination: "某某区人民法院",
                outside: true,
                sensitive: false,
            },
        )
        .unwrap()
        .id;
    station.decide(&head, id, true, None, 7).unwrap();
    let done = station
        .export(&clerk, id, &dir.path().join("exports"))
        .unwrap();
    assert!(done.image.is_none(), "a copy is a folder only");
    let out = custody(&["verify", arg(&done.folder)]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("导出包") && text.contains("申请、审批与导出记录相符"),
        "{text}"
    );

    // A forger takes the approval out and rewrites SHA256SUMS to match.
    let mut approval = None;
    for entry in fs::read_dir(done.folder.join("station-records")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "json")
            && fs::read_to_string(&path)
                .unwrap()
                .contains("\"kind\": \"decision\"")
        {
            approval = Some(path);
        }
    }
    let approval = approval.expect("the package carries its approval");
    let name = approval.file_name().unwrap().to_str().unwrap().to_owned();
    let stem = name.trim_end_matches(".json");
    fs::remove_file(&approval).unwrap();
    fs::remove_file(approval.with_extension("sig")).unwrap();
    let sums = fs::read_to_string(done.folder.join("SHA256SUMS")).unwrap();
    let kept: Vec<&str> = sums
        .lines()
        .filter(|l| !l.contains(&format!("station-records/{stem}.")))
        .collect();
    fs::write(done.folder.join("SHA256SUMS"), kept.join("\n") + "\n").unwrap();
    let out = custody(&["verify", "--json", arg(&done.folder)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no valid approval"), "{text}");
}
