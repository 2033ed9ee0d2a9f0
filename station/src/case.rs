//! The case file (案卷): one view of a case (every clip recorded under it or bound to it
//! later, from any device; its documents; its dates), documents a clerk attaches, and the
//! closing of a case, which sets the case file's due date (20 working days after the act
//! ended, by the official calendar).

use std::fs::File;
use std::path::Path;

use anyhow::{Context as _, bail};
use chrono::{DateTime, NaiveDate, Utc};
use custody::{
    AccessAction, CaseClosedFact, DocumentFact, DocumentNumber, RecordHash, Role, StationFact,
    StationRecord,
};
use serde::Serialize;

use crate::ledger::{LedgerClosure, LedgerDisc, LedgerDocument};
use crate::report::ClipRow;
use crate::{Actor, Expected, ReportQuery, Station};

/// Working days from the end of the act to the case file's due date.
pub const CASE_FILE_WORKING_DAYS: u32 = 20;
/// A case file due within this many days is listed as close to its date.
pub const DUE_SOON_DAYS: i64 = 5;

/// A file type a document may be: its extensions, the bytes it starts with, its name.
struct DocumentType {
    extensions: &'static [&'static str],
    magics: &'static [&'static [u8]],
    name: &'static str,
}

/// The file types a document may be.
const DOCUMENT_TYPES: &[DocumentType] = &[
    DocumentType {
        extensions: &["pdf"],
        magics: &[b"%PDF-"],
        name: "PDF",
    },
    DocumentType {
        extensions: &["jpg", "jpeg"],
        magics: &[b"\xFF\xD8\xFF"],
        name: "JPEG",
    },
    DocumentType {
        extensions: &["png"],
        magics: &[b"\x89PNG\r\n\x1A\n"],
        name: "PNG",
    },
    DocumentType {
        extensions: &["tif", "tiff"],
        magics: &[b"II*\0", b"MM\0*"],
        name: "TIFF",
    },
    DocumentType {
        extensions: &["ofd"],
        magics: &[b"PK\x03\x04"],
        name: "OFD",
    },
];

/// The case header: who the case is and where its file stands.
#[derive(Debug, Clone, Serialize)]
pub struct CaseHeader {
    /// The canonical document number.
    pub case_number: String,
    /// 文书类别 from the number (e.g. 罚).
    pub document_kind: String,
    /// 执法行为类别 the numbering template gives that kind (e.g. 行政处罚), else the kind.
    pub act_type: String,
    /// The day the act ended, once the case is closed.
    pub ended: Option<NaiveDate>,
    /// The case file's due date, once the case is closed.
    pub due: Option<NaiveDate>,
}

/// One view of a case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    /// The header.
    pub header: CaseHeader,
    /// Every clip recorded under the case or bound to it, from any device.
    pub clips: Vec<ClipRow>,
    /// Clips of the case the viewer may not see (not listed).
    pub hidden: usize,
    /// The documents attached.
    pub documents: Vec<LedgerDocument>,
    /// The archive discs built for it, with their last burn and check.
    pub discs: Vec<LedgerDisc>,
    /// Whether a whole disc set was burned and checked intact (归档).
    pub archived: bool,
}

/// A closed case whose file is not archived yet, with how its due date stands.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDue {
    /// The closure.
    #[serde(flatten)]
    pub closure: LedgerClosure,
    /// Days left until the due date (negative: past it).
    pub days_left: i64,
}

impl Station {
    /// The canonical number of a case given in any spelling the numbering scheme accepts.
    ///
    /// # Errors
    /// No `numbering` template configured, or a number it does not accept (the message
    /// says where and why).
    pub fn case_number(&self, input: &str) -> anyhow::Result<DocumentNumber> {
        let scheme = self.config().numbering.as_ref().context(
            "case numbers need the agency's numbering template (numbering = … in station.toml)",
        )?;
        Ok(scheme.parse_document(input)?)
    }

    /// The case view of `input` (any spelling of its number) as `actor` may see it: an
    /// officer their own clips only, IT nothing. The access event naming every clip shown
    /// is in the ledger and the log before the view is returned.
    ///
    /// # Errors
    /// A refused role (IT; an officer with no clip in the case), a number the scheme
    /// rejects, or a ledger failure (nothing is shown then).
    pub fn case_view(&self, actor: &Actor, input: &str) -> anyhow::Result<CaseView> {
        actor.refuse_it("case files")?;
        let mut view = self.case_file(input)?;
        let all = view.clips.len();
        view.clips.retain(|c| actor.sees_clip(c));
        view.hidden = all - view.clips.len();
        if actor.role() == Role::Officer && view.clips.is_empty() {
            bail!(
                "refused: no clip of case {} is yours (民警 see their own clips)",
                view.header.case_number
            );
        }
        let records: Vec<RecordHash> = view.clips.iter().map(|c| c.record).collect();
        self.record_access(
            actor,
            AccessAction::CaseView,
            Some(&view.header.case_number),
            &records,
            None,
            &[],
        )?;
        Ok(view)
    }

    /// The whole case file of `input`, unchecked and unlogged: for the station's own work
    /// on it (discs), never served as is.
    ///
    /// # Errors
    /// A number the scheme rejects, or a ledger failure.
    pub(crate) fn case_file(&self, input: &str) -> anyhow::Result<CaseView> {
        let number = self.case_number(input)?;
        let case_number = number.to_string();
        let report = self.report(
            &ReportQuery {
                case: Some(case_number.clone()),
                ..ReportQuery::default()
            },
            self.now(),
        )?;
        let ledger = self.ledger();
        let closure = ledger.case_closure(&case_number)?;
        let discs = ledger.case_discs(&case_number)?;
        Ok(CaseView {
            archived: archived(&discs),
            header: CaseHeader {
                act_type: self
                    .config()
                    .numbering
                    .as_ref()
                    .and_then(|s| s.act_type(&number.kind))
                    .unwrap_or(&number.kind)
                    .to_owned(),
                document_kind: number.kind,
                ended: closure.as_ref().map(|c| c.ended),
                due: closure.as_ref().map(|c| c.due),
                case_number: case_number.clone(),
            },
            clips: report.clips,
            hidden: 0,
            documents: ledger.case_documents(&case_number)?,
            discs,
        })
    }

    /// Stores a document for a case write-once (hashed as it is copied), then commits the
    /// station record describing it as a leaf of the log. A file that is empty, cannot be
    /// read, or is not what its extension says is refused before anything is stored.
    ///
    /// # Errors
    /// As above, or a store or ledger failure (a stored object without its record is never
    /// shown as a document).
    pub fn attach_document(
        &self,
        case_input: &str,
        path: &Path,
        title: &str,
        by: &str,
    ) -> anyhow::Result<StationRecord> {
        let case_number = self.case_number(case_input)?.to_string();
        if title.trim().is_empty() {
            bail!("a document needs a title (--title, e.g. 行政处罚决定书)");
        }
        if by.trim().is_empty() {
            bail!("say who attaches the document (--by)");
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.chars().any(char::is_control))
            .with_context(|| format!("{}: the file name must be UTF-8 text", path.display()))?
            .to_owned();
        let mut file =
            File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if size == 0 {
            bail!("{} is empty: nothing to attach", path.display());
        }
        check_document_type(&mut file, path, &name)?;
        let mut buf = vec![0; crate::BUF_LEN];
        let stored = self
            .store()
            .put(&mut file, Expected { size, sha256: None }, &mut buf)
            .with_context(|| format!("storing {}", path.display()))?;
        let fact = StationFact::Document(DocumentFact {
            case_number,
            title: title.trim().into(),
            file: name,
            sha256: stored.hash,
            size: stored.size,
            attached_by: by.trim().into(),
        });
        self.commit_station_fact(fact)
    }

    /// Closes a case: its act ended on `ended`, so its case file is due 20 working days
    /// later by the official calendar. A date the calendar has no data for is refused
    /// (named), never guessed.
    ///
    /// # Errors
    /// A number the scheme rejects, a date outside the calendar, or a ledger failure.
    pub fn close_case(
        &self,
        case_input: &str,
        ended: NaiveDate,
        by: &str,
    ) -> anyhow::Result<StationRecord> {
        let case_number = self.case_number(case_input)?.to_string();
        if by.trim().is_empty() {
            bail!("say who closes the case (--by)");
        }
        let today = self
            .now()
            .with_timezone(&self.config().utc_offset)
            .date_naive();
        if ended > today {
            bail!("the act cannot end in the future ({ended}; today is {today})");
        }
        let due = self
            .config()
            .calendar
            .add_working_days(ended, CASE_FILE_WORKING_DAYS)
            .with_context(|| {
                format!(
                    "cannot count {CASE_FILE_WORKING_DAYS} working days from {ended}: add the year's official calendar to calendar-dir"
                )
            })?;
        self.commit_station_fact(StationFact::CaseClosed(CaseClosedFact {
            case_number,
            ended,
            due,
            closed_by: by.trim().into(),
        }))
    }

    /// Closed cases whose file is not archived yet, due within `soon_days` of `today` or
    /// past their date, soonest first.
    ///
    /// # Errors
    /// A ledger failure.
    pub fn cases_due(&self, today: NaiveDate, soon_days: i64) -> anyhow::Result<Vec<CaseDue>> {
        let ledger = self.ledger();
        let mut open = Vec::new();
        for closure in ledger.case_closures()? {
            if !archived(&ledger.case_discs(&closure.case_number)?) {
                open.push(closure);
            }
        }
        Ok(open
            .into_iter()
            .map(|closure| CaseDue {
                days_left: (closure.due - today).num_days(),
                closure,
            })
            .filter(|c| c.days_left <= soon_days)
            .collect())
    }

    /// Seals and commits a station record, then signs a checkpoint covering it, so that
    /// its inclusion can be proved at once.
    pub(crate) fn commit_station_fact(&self, fact: StationFact) -> anyhow::Result<StationRecord> {
        let now: DateTime<Utc> = self.now();
        let created = now.with_timezone(&self.config().utc_offset);
        let mut ledger = self.ledger();
        let rec =
            ledger.commit_station_fact(fact, self.station_key(), &self.config().origin, created)?;
        ledger.sign_checkpoint(&self.signer, now)?;
        Ok(rec)
    }
}

/// Whether some disc set of a case was wholly burned and checked intact.
pub(crate) fn archived(discs: &[LedgerDisc]) -> bool {
    let sets: std::collections::BTreeSet<u64> = discs.iter().map(|d| d.set).collect();
    sets.into_iter().any(|set| {
        let in_set: Vec<&LedgerDisc> = discs.iter().filter(|d| d.set == set).collect();
        in_set.len() as u64 == in_set[0].of
            && in_set
                .iter()
                .all(|d| d.burned == Some(true) && d.intact == Some(true))
    })
}

/// Refuses a document whose bytes are not the type its extension names; leaves `file` at
/// its start.
fn check_document_type(file: &mut File, path: &Path, name: &str) -> anyhow::Result<()> {
    use std::io::{Read as _, Seek as _};
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let Some(kind) = DOCUMENT_TYPES
        .iter()
        .find(|t| t.extensions.contains(&ext.as_str()))
    else {
        let known: Vec<&str> = DOCUMENT_TYPES
            .iter()
            .flat_map(|t| t.extensions.iter().copied())
            .collect();
        bail!(
            "{name}: documents are {} files (by extension), not {ext:?}",
            known.join(", ")
        );
    };
    let mut head = Vec::with_capacity(8);
    (&mut *file)
        .take(8)
        .read_to_end(&mut head)
        .and_then(|_| file.rewind())
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !kind.magics.iter().any(|m| head.starts_with(m)) {
        let label = kind.name;
        bail!("{name} is named as a {label} file but its bytes are not {label}");
    }
    Ok(())
}
