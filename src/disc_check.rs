//! Checking the files of an archive disc (a mounted disc or a folder copied from one, as a
//! station writes them): every file against `SHA256SUMS` and nothing beyond it, every
//! device and station record's signature, every clip's and document's hash against the
//! record stating it (`FILES.txt`), the checkpoint's signature, and every inclusion proof
//! to it. Each problem names the file. Whose keys count is the caller's [`DiscTrust`]: a
//! station trusts its ledger, a court the keys it was given (or the disc's own).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use chrono::{DateTime, FixedOffset};

use crate::access_fact::{AccessAction, AccessFact, DecisionFact, RequestFact, Role};
use crate::hash::RecordHash;
use crate::hash::{MediaHash, hash_reader};
use crate::keys::{PublicKey, Signature};
use crate::merkle::{leaf_hash, verify_inclusion};
use crate::note::{Checkpoint, NoteVerifier};
use crate::record::Record;
use crate::station_record::{StationFact, StationRecord, StationRecordBody};

/// The file that identifies a disc (case, volume id, station, disc n of N).
pub const DISC_META_FILE: &str = "disc.json";

/// Whose keys a disc check trusts.
pub trait DiscTrust {
    /// The key device `serial`'s records must verify under, if it is trusted.
    fn device_key(&self, serial: &str) -> Option<PublicKey>;
    /// The station whose records and checkpoint the disc carries, if it is trusted.
    fn station(&self) -> Option<NoteVerifier>;
}

/// What `disc.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscMeta {
    /// The case's canonical number.
    pub case_number: String,
    /// The volume id.
    pub volume_id: String,
    /// Disc number in its set.
    pub disc: usize,
    /// Discs in the set.
    pub of: usize,
    /// The station's log origin.
    pub station: String,
    /// The log size of the checkpoint the proofs lead to.
    pub checkpoint_size: u64,
    /// Present on an export package: the request it was made under.
    #[serde(default)]
    pub package: Option<PackageMeta>,
}

/// What `disc.json` says of an export package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageMeta {
    /// The request's id (the seq of its station record).
    pub request: u64,
    /// The form (`copy`, `disc`, `package`).
    pub form: String,
    /// Where it goes.
    pub destination: String,
}

/// One thing wrong with a disc.
#[derive(Debug, Clone, Serialize)]
pub struct DiscProblem {
    /// The file (path on the disc), or `disc` for the disc as a whole.
    pub file: String,
    /// What is wrong.
    pub why: String,
}

impl DiscProblem {
    /// A problem with `file`.
    pub fn new(file: &str, why: &str) -> Self {
        Self {
            file: file.into(),
            why: why.into(),
        }
    }
}

/// The outcome of a disc check.
#[derive(Debug, Clone, Serialize)]
pub struct DiscCheck {
    /// The disc's volume id (from its `disc.json`).
    pub volume_id: Option<String>,
    /// The case it belongs to.
    pub case_number: Option<String>,
    /// Files checked against `SHA256SUMS`.
    pub files: usize,
    /// SHA-256 of the disc's `SHA256SUMS` (what the disc holds).
    pub sums_sha256: Option<MediaHash>,
    /// For an export package, the request it was made under.
    pub package: Option<u64>,
    /// What is wrong (empty: intact).
    pub problems: Vec<DiscProblem>,
}

impl DiscCheck {
    /// Whether everything verified.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    /// The verdict for people, in Chinese: one line when intact, else a line and one per
    /// problem.
    pub fn lines_zh(&self) -> Vec<String> {
        let volume = self.volume_id.as_deref().unwrap_or("?");
        let noun = if self.package.is_some() {
            "导出包"
        } else {
            "光盘"
        };
        if self.is_intact() {
            let approvals = if self.package.is_some() {
                "，申请、审批与导出记录相符"
            } else {
                ""
            };
            return vec![format!(
                "{noun} {volume}（{}）核验通过：{} 个文件，签名与包含证明均有效{approvals}",
                self.case_number.as_deref().unwrap_or("?"),
                self.files
            )];
        }
        let mut lines = vec![format!(
            "{noun} {volume} 核验失败（{} 处问题）：",
            self.problems.len()
        )];
        lines.extend(
            self.problems
                .iter()
                .map(|p| format!("  {}: {}", p.file, p.why)),
        );
        lines
    }
}

/// Reads `disc.json` at `root`, if it is a disc's.
pub fn disc_meta(root: &Path) -> Option<DiscMeta> {
    fs::read(root.join(DISC_META_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Checks the disc files at `root` under `trust`.
///
/// # Errors
/// The folder cannot be listed or has no `SHA256SUMS` (not a disc); damage is a problem in
/// the outcome, not an error.
pub fn check_disc_folder(root: &Path, trust: &dyn DiscTrust) -> io::Result<DiscCheck> {
    let mut problems = Vec::new();
    let meta = disc_meta(root);
    if meta.is_none() {
        problems.push(DiscProblem::new(
            DISC_META_FILE,
            "missing or unreadable: not a Custody disc?",
        ));
    }
    let sums = fs::read(root.join("SHA256SUMS"))?;
    let listed = check_sums(root, &sums, &mut problems)?;
    check_signatures(root, &listed, trust, &mut problems);
    check_stated_hashes(root, &mut problems);
    check_proofs(root, &listed, trust, &mut problems);
    let package = meta.as_ref().and_then(|m| m.package.as_ref());
    if let Some(package) = package {
        check_package(root, &listed, package, &mut problems);
    }
    Ok(DiscCheck {
        package: package.map(|p| p.request),
        volume_id: meta.as_ref().map(|m| m.volume_id.clone()),
        case_number: meta.map(|m| m.case_number),
        files: listed.len(),
        sums_sha256: Some(MediaHash::of(&sums)),
        problems,
    })
}

/// Every file against `SHA256SUMS`, and nothing on the disc beyond it; returns the files
/// it lists.
fn check_sums(
    root: &Path,
    sums: &[u8],
    problems: &mut Vec<DiscProblem>,
) -> io::Result<BTreeSet<String>> {
    let mut listed = BTreeSet::new();
    let mut buf = vec![0; 128 * 1024];
    for line in String::from_utf8_lossy(sums).lines() {
        let Some((hash, file)) = line.split_once("  ") else {
            problems.push(DiscProblem::new(
                "SHA256SUMS",
                &format!("unreadable line {line:?}"),
            ));
            continue;
        };
        if file.split('/').any(|part| part == ".." || part.is_empty()) {
            problems.push(DiscProblem::new(file, "a path out of the disc"));
            continue;
        }
        listed.insert(file.to_owned());
        match fs::File::open(root.join(file)).and_then(|f| hash_reader(f, &mut buf)) {
            Ok((_, found)) if found.to_string() == hash => {}
            Ok((_, found)) => problems.push(DiscProblem::new(
                file,
                &format!("SHA-256 is {found}, SHA256SUMS says {hash}"),
            )),
            Err(e) => problems.push(DiscProblem::new(file, &format!("cannot be read: {e}"))),
        }
    }
    for file in files_under(root)? {
        if file != "SHA256SUMS" && !listed.contains(&file) {
            problems.push(DiscProblem::new(&file, "on the disc but not in SHA256SUMS"));
        }
    }
    Ok(listed)
}

/// Device records under the trusted device keys, station records under the trusted
/// station's key, and the disc's station key file against it.
fn check_signatures(
    root: &Path,
    listed: &BTreeSet<String>,
    trust: &dyn DiscTrust,
    problems: &mut Vec<DiscProblem>,
) {
    let read = |rel: &str| fs::read(root.join(rel));
    let sig = |f: &str| {
        read(&f.replace(".json", ".sig"))
            .ok()
            .and_then(|b| Signature::from_bytes(&b).ok())
    };
    let station_key = trust.station().map(|s| s.public_key());
    for file in listed
        .iter()
        .filter(|f| Path::new(f).extension().is_some_and(|x| x == "json"))
    {
        if let Some(rest) = file.strip_prefix("records/") {
            let serial = rest.split('/').next().unwrap_or_default();
            let ok = match (trust.device_key(serial), sig(file), read(file)) {
                (Some(key), Some(sig), Ok(bytes)) => {
                    Record::parse(bytes).is_ok_and(|r| r.verify(&key, &sig).is_ok())
                }
                _ => false,
            };
            if !ok {
                problems.push(DiscProblem::new(
                    file,
                    "signature does not verify under a trusted key of its device",
                ));
            }
        } else if file.starts_with("station-records/") {
            let ok = match (station_key, sig(file), read(file)) {
                (Some(key), Some(sig), Ok(bytes)) => {
                    StationRecord::parse_verified(bytes, &key, &sig).is_ok()
                }
                _ => false,
            };
            if !ok {
                problems.push(DiscProblem::new(
                    file,
                    "signature does not verify under the trusted station key",
                ));
            }
        }
    }
    let on_disc = read("keys/station.pub.pem")
        .ok()
        .and_then(|b| PublicKey::from_pem(&String::from_utf8_lossy(&b)).ok());
    if station_key.is_none() || on_disc != station_key {
        problems.push(DiscProblem::new(
            "keys/station.pub.pem",
            "is not the trusted station key",
        ));
    }
}

/// Each clip's and document's hash (`FILES.txt`) is the one its record states.
fn check_stated_hashes(root: &Path, problems: &mut Vec<DiscProblem>) {
    let files_txt = fs::read(root.join("FILES.txt")).unwrap_or_default();
    for line in String::from_utf8_lossy(&files_txt).lines() {
        let mut parts = line.split(' ');
        let (Some(hash), Some(file), Some(rec)) = (parts.next(), parts.next(), parts.next()) else {
            problems.push(DiscProblem::new(
                "FILES.txt",
                &format!("unreadable line {line:?}"),
            ));
            continue;
        };
        let stated = fs::read(root.join(rec))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).contains(&format!("\"sha256\": \"{hash}\"")));
        if stated != Some(true) {
            problems.push(DiscProblem::new(
                file,
                &format!("its record {rec} does not state its hash"),
            ));
        }
    }
}

/// The checkpoint is the trusted station's, and every proof leads to it.
fn check_proofs(
    root: &Path,
    listed: &BTreeSet<String>,
    trust: &dyn DiscTrust,
    problems: &mut Vec<DiscProblem>,
) {
    let checkpoint = trust.station().and_then(|station| {
        let note = fs::read(root.join("checkpoint.txt")).ok()?;
        Checkpoint::open(&note, station.name(), &station, &[])
            .ok()
            .map(|(cp, _)| cp)
    });
    let Some(cp) = checkpoint else {
        problems.push(DiscProblem::new(
            "checkpoint.txt",
            "missing, or not signed by the trusted station",
        ));
        return;
    };
    for file in listed.iter().filter(|f| f.starts_with("proofs/")) {
        if !proof_holds(root, file, &cp) {
            problems.push(DiscProblem::new(
                file,
                "inclusion proof does not lead to the checkpoint",
            ));
        }
    }
}

/// Whether a `proofs/*.txt` file proves its leaf into `cp`.
fn proof_holds(root: &Path, file: &str, cp: &Checkpoint) -> bool {
    let Ok(text) = fs::read_to_string(root.join(file)) else {
        return false;
    };
    let (mut leaf, mut index, mut size, mut hashes) = (None, None, None, Vec::new());
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("leaf", v)) => leaf = Some(v.to_owned()),
            Some(("index", v)) => index = v.parse::<u64>().ok(),
            Some(("size", v)) => size = v.parse::<u64>().ok(),
            Some(("hash", v)) => match hex::decode(v) {
                Ok(h) => hashes.push(h),
                Err(_) => return false,
            },
            _ => return false,
        }
    }
    let (Some(leaf), Some(index), Some(size)) = (leaf, index, size) else {
        return false;
    };
    if leaf.split('/').any(|part| part == "..") {
        return false;
    }
    let Ok(bytes) = fs::read(root.join(&leaf)) else {
        return false;
    };
    size == cp.size && verify_inclusion(&leaf_hash(&bytes), index, size, &hashes, &cp.root).is_ok()
}

/// The station records of an export package: its request, the decisions on it and its
/// export events.
#[derive(Default)]
struct PackageRecords {
    request: Option<(RecordHash, RequestFact)>,
    decisions: Vec<(String, RecordHash, DecisionFact)>,
    exports: Vec<(String, DateTime<FixedOffset>, AccessFact)>,
}

fn is_json(file: &str) -> bool {
    Path::new(file).extension().is_some_and(|x| x == "json")
}

/// An export package's request, approvals and export event agree: the package holds
/// exactly the clips the request names and every approval approved, each approval is by a
/// department head or the agency head who is not the requester, and the export was made
/// under those approvals before they expired. (Signatures and proofs are checked apart.)
fn check_package(
    root: &Path,
    listed: &BTreeSet<String>,
    package: &PackageMeta,
    problems: &mut Vec<DiscProblem>,
) {
    let id = package.request;
    let mut found = PackageRecords::default();
    for file in listed
        .iter()
        .filter(|f| f.starts_with("station-records/") && is_json(f))
    {
        let Some(bytes) = fs::read(root.join(file)).ok() else {
            continue;
        };
        let Ok(body) = serde_json::from_slice::<StationRecordBody>(&bytes) else {
            problems.push(DiscProblem::new(file, "not a station record"));
            continue;
        };
        let hash = RecordHash::of(&bytes);
        match body.fact {
            StationFact::Request(r) if body.seq == id => found.request = Some((hash, r)),
            StationFact::Decision(d) if d.request == id => {
                found.decisions.push((file.clone(), hash, d));
            }
            StationFact::Access(a) if a.action == AccessAction::Export && a.request == Some(id) => {
                found.exports.push((file.clone(), body.created, a));
            }
            _ => {}
        }
    }
    let Some((request_hash, request)) = &found.request else {
        problems.push(DiscProblem::new(
            DISC_META_FILE,
            &format!("the package carries no record of request {id}"),
        ));
        return;
    };
    let asked: BTreeSet<RecordHash> = request.records.iter().copied().collect();
    let approvals = check_approvals(&found, *request_hash, request, &asked, problems);
    check_export(&found, &approvals, &asked, id, problems);
    check_shipped_clips(root, listed, &asked, problems);
}

/// The approving decisions that hold (by a department head or the agency head, not the
/// requester, of exactly the clips asked); a problem for each that does not.
fn check_approvals(
    found: &PackageRecords,
    request_hash: RecordHash,
    request: &RequestFact,
    asked: &BTreeSet<RecordHash>,
    problems: &mut Vec<DiscProblem>,
) -> BTreeSet<RecordHash> {
    let mut approvals = BTreeSet::new();
    for (file, hash, d) in &found.decisions {
        let why = if d.request_record != request_hash {
            "decides another request record"
        } else if !d.approved {
            "the request was rejected"
        } else if d.approver == request.requester {
            "approved by the requester"
        } else if !matches!(d.role, Role::DepartmentHead | Role::AgencyHead) {
            "approved by a role that does not approve"
        } else if d.records.iter().copied().collect::<BTreeSet<_>>() != *asked {
            "approves other clips than the request names"
        } else {
            approvals.insert(*hash);
            continue;
        };
        problems.push(DiscProblem::new(file, why));
    }
    if approvals.is_empty() {
        problems.push(DiscProblem::new(
            DISC_META_FILE,
            "the package carries no valid approval of its request",
        ));
    }
    approvals
}

/// One export event, under exactly the approvals held, of the clips asked, before the
/// approvals expired.
fn check_export(
    found: &PackageRecords,
    approvals: &BTreeSet<RecordHash>,
    asked: &BTreeSet<RecordHash>,
    id: u64,
    problems: &mut Vec<DiscProblem>,
) {
    match found.exports.as_slice() {
        [(file, created, a)] => {
            if a.approvals.iter().copied().collect::<BTreeSet<_>>() != *approvals {
                problems.push(DiscProblem::new(
                    file,
                    "names other approvals than the package carries",
                ));
            }
            if a.records.iter().copied().collect::<BTreeSet<_>>() != *asked {
                problems.push(DiscProblem::new(file, "exported other clips than approved"));
            }
            let expired = found
                .decisions
                .iter()
                .filter(|(_, h, _)| approvals.contains(h))
                .any(|(_, _, d)| d.expires.is_none_or(|e| e <= *created));
            if expired {
                problems.push(DiscProblem::new(file, "made after its approval expired"));
            }
        }
        [] => problems.push(DiscProblem::new(
            DISC_META_FILE,
            &format!("the package carries no export event of request {id}"),
        )),
        _ => problems.push(DiscProblem::new(
            DISC_META_FILE,
            "the package carries several export events: an approval is used once",
        )),
    }
}

/// The package's clip records are exactly the ones asked, and every file under `clips/`
/// is stated by one of them.
fn check_shipped_clips(
    root: &Path,
    listed: &BTreeSet<String>,
    asked: &BTreeSet<RecordHash>,
    problems: &mut Vec<DiscProblem>,
) {
    let mut shipped = BTreeSet::new();
    for file in listed
        .iter()
        .filter(|f| f.starts_with("records/") && is_json(f))
    {
        let Some(rec) = fs::read(root.join(file))
            .ok()
            .and_then(|b| Record::parse(b).ok())
        else {
            continue;
        };
        if matches!(rec.body().fact, crate::record::Fact::Clip(_)) {
            if !asked.contains(&rec.hash()) {
                problems.push(DiscProblem::new(file, "a clip the request does not name"));
            }
            shipped.insert(rec.hash());
        }
    }
    if shipped != *asked {
        problems.push(DiscProblem::new(
            DISC_META_FILE,
            &format!(
                "the package holds {} of the {} clips approved",
                shipped.intersection(asked).count(),
                asked.len()
            ),
        ));
    }
    let files_txt = fs::read_to_string(root.join("FILES.txt")).unwrap_or_default();
    let stated: BTreeSet<&str> = files_txt
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .collect();
    for file in listed.iter().filter(|f| f.starts_with("clips/")) {
        if !stated.contains(file.as_str()) {
            problems.push(DiscProblem::new(file, "a file no approved record states"));
        }
    }
}

/// Every regular file under `root`, as paths relative to it (symlinks not followed).
fn files_under(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    Ok(out)
}

/// The trust a court starts from: the keys on the disc itself, or only those of them it
/// was given (`trusted`, e.g. the station's and devices' keys published by the agency).
pub struct DiscOwnKeys<'a> {
    root: &'a Path,
    trusted: &'a [PublicKey],
}

impl<'a> DiscOwnKeys<'a> {
    /// Trust the disc at `root`'s keys; if `trusted` is not empty, only those among them.
    pub fn new(root: &'a Path, trusted: &'a [PublicKey]) -> Self {
        Self { root, trusted }
    }

    fn key(&self, file: &str) -> Option<PublicKey> {
        let pem = fs::read_to_string(self.root.join("keys").join(file)).ok()?;
        let key = PublicKey::from_pem(&pem).ok()?;
        (self.trusted.is_empty() || self.trusted.contains(&key)).then_some(key)
    }
}

impl DiscTrust for DiscOwnKeys<'_> {
    fn device_key(&self, serial: &str) -> Option<PublicKey> {
        if serial.contains(['/', '\\']) || serial.starts_with('.') {
            return None;
        }
        self.key(&format!("{serial}.pub.pem"))
    }

    fn station(&self) -> Option<NoteVerifier> {
        let origin = disc_meta(self.root)?.station;
        NoteVerifier::new(&origin, self.key("station.pub.pem")?).ok()
    }
}
