//! Serving content: an export package made from an approved request (once, by its
//! requester, before it expires, of exactly the clips approved), and playback of one clip
//! (one's own, one's department's as its head, or under an approved view request). The
//! access event is in the ledger and the log before the first byte.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use custody::{AccessAction, ExportForm, RecordHash};
use serde::Serialize;

use super::{Actor, RequestState};
use crate::Station;
use crate::disc::{DiscPlan, PackagePlan};
use crate::report::{ClipRow, ClipStatus};

/// An export package written.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The request it was made under.
    pub request: u64,
    /// The package folder.
    pub folder: PathBuf,
    /// Its ISO image, for the disc and package forms.
    pub image: Option<PathBuf>,
    /// Clips in it.
    pub clips: usize,
    /// Files in it.
    pub files: u64,
    /// SHA-256 of its `SHA256SUMS`.
    pub sums_sha256: String,
    /// The export's access event (station record hash).
    pub record: String,
}

impl Station {
    /// Writes the export package of approved request `id` under `out` as `actor` (its
    /// requester). Refused unless the request is approved by everyone it needs, unexpired
    /// and unused, and names exactly the clips its approvals name; the export event is in
    /// the ledger and the log before any clip is read.
    ///
    /// # Errors
    /// As above, a clip not intact in the store, or an I/O, xorriso or ledger failure.
    pub fn export(&self, actor: &Actor, id: u64, out: &Path) -> anyhow::Result<Exported> {
        self.export_as(actor, id, out, false)
    }

    /// As [`Station::export`], with the ISO image written whatever the form: the web
    /// page's copy leaves as a download.
    ///
    /// # Errors
    /// As [`Station::export`].
    pub fn export_with_image(
        &self,
        actor: &Actor,
        id: u64,
        out: &Path,
    ) -> anyhow::Result<Exported> {
        self.export_as(actor, id, out, true)
    }

    /// Opens the image of request `id`'s export under `out` for `actor`, its requester,
    /// to download before its approval expires. Each download is an access event, in the
    /// ledger and the log before the file is opened.
    ///
    /// # Errors
    /// Refused as above, an export without an image, or a ledger failure.
    pub fn open_export_image(
        &self,
        actor: &Actor,
        id: u64,
        out: &Path,
    ) -> anyhow::Result<(PathBuf, std::fs::File)> {
        let status = self.requester_status(actor, id)?;
        let image = self.export_image(&status, out)?;
        self.record_access(
            actor,
            AccessAction::Download,
            status.fact.case_number.as_deref(),
            &status.fact.records,
            Some(id),
            &status.approvals(),
        )?;
        let file =
            std::fs::File::open(&image).with_context(|| format!("opening {}", image.display()))?;
        Ok((image, file))
    }

    /// The image of request `status`'s export under `out`, if it may be downloaded now:
    /// exported, its approval unexpired, the image there (whoever asks; the requester is
    /// checked by [`Station::open_export_image`]).
    ///
    /// # Errors
    /// Why not.
    pub fn export_image(
        &self,
        status: &super::RequestStatus,
        out: &Path,
    ) -> anyhow::Result<PathBuf> {
        let id = status.id;
        if status.state != RequestState::Used {
            bail!(
                "request {id} is {}: there is no export to download",
                status.state.zh()
            );
        }
        if status.expires.is_some_and(|e| e <= self.now()) {
            bail!("refused: the approval of request {id} has expired");
        }
        let image = out.join(format!("{}.iso", export_name(id)));
        if !image.is_file() {
            bail!("request {id}'s export has no image to download");
        }
        Ok(image)
    }

    /// Request `id`'s status, if `actor` is its requester (IT never is).
    fn requester_status(&self, actor: &Actor, id: u64) -> anyhow::Result<super::RequestStatus> {
        actor.refuse_it("exports")?;
        let status = self.request_status(id)?;
        if actor.id() != status.fact.requester {
            bail!(
                "refused: request {id} is {}'s; only the requester uses its approval",
                status.requester
            );
        }
        Ok(status)
    }

    fn export_as(
        &self,
        actor: &Actor,
        id: u64,
        out: &Path,
        always_image: bool,
    ) -> anyhow::Result<Exported> {
        let (status, clips) = self.approved_for_export(actor, id)?;
        let approvals = status.approvals();
        let volume_id = export_name(id);
        if out.join(&volume_id).exists() {
            bail!("{} exists already", out.join(&volume_id).display());
        }
        let event = self.record_access(
            actor,
            AccessAction::Export,
            status.fact.case_number.as_deref(),
            &status.fact.records,
            Some(id),
            &approvals,
        )?;
        let (station_records, checkpoint, people) = {
            let mut ledger = self.ledger();
            let mut records = vec![
                ledger
                    .request(id)?
                    .context("the request vanished from the ledger")?
                    .record,
            ];
            records.extend(ledger.decisions(id)?);
            records.push(
                ledger
                    .station_record(&event.hash())?
                    .context("the export event vanished from the ledger")?,
            );
            let checkpoint = ledger.sign_checkpoint(&self.signer, self.now())?;
            let mut people = Vec::new();
            for who in std::iter::once(status.fact.requester).chain(
                status
                    .decisions
                    .iter()
                    .filter(|(_, d)| d.approved)
                    .map(|(_, d)| d.approver),
            ) {
                people.push(ledger.person(who)?);
            }
            (records, checkpoint, people)
        };
        let describe = |p: &Option<crate::LedgerPerson>| {
            p.as_ref()
                .map_or_else(|| "?".into(), |p| format!("{}（{}）", p.name, p.department))
        };
        let approvers = status
            .decisions
            .iter()
            .filter(|(_, d)| d.approved)
            .zip(people.iter().skip(1))
            .map(|((_, d), p)| format!("{} {}", describe(p), d.role.name_zh()))
            .collect();
        let case_number = status
            .fact
            .case_number
            .clone()
            .or_else(|| common_case(&clips))
            .unwrap_or_else(|| "—".into());
        let plan = DiscPlan {
            case_number,
            set: 0,
            disc: 1,
            of: 1,
            volume_id,
            clips: Vec::new(),
            documents: Vec::new(),
            package: Some(PackagePlan {
                request: id,
                form: status.fact.form,
                purpose: status.fact.purpose.clone(),
                destination: status.fact.destination.clone(),
                outside: status.fact.outside,
                requester: describe(&people[0]),
                approvers,
            }),
        };
        let image =
            always_image || matches!(status.fact.form, ExportForm::Disc | ExportForm::Package);
        let written = self.write_package(plan, &clips, station_records, &checkpoint, out, image)?;
        Ok(Exported {
            request: id,
            folder: written.folder,
            image: written.image,
            clips: clips.len(),
            files: written.files,
            sums_sha256: written.sums_sha256.to_string(),
            record: event.hash().to_string(),
        })
    }

    /// Request `id` with its clips, if `actor` may make its copy now: its requester, a
    /// copy form, approved by everyone it needs, unexpired, unused, every clip intact.
    fn approved_for_export(
        &self,
        actor: &Actor,
        id: u64,
    ) -> anyhow::Result<(super::RequestStatus, Vec<ClipRow>)> {
        let status = self.requester_status(actor, id)?;
        if status.fact.form == ExportForm::View {
            bail!("request {id} is to view (调阅): play its clips, there is nothing to export");
        }
        if status.state != RequestState::Approved {
            let missing: Vec<String> = status.missing.iter().map(super::Requirement::zh).collect();
            bail!(
                "refused: request {id} is {}{}",
                status.state.zh(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("，尚需 {} 审批", missing.join("、"))
                }
            );
        }
        let clips = self.clips_by_record(&status.fact.records)?;
        if clips.len() != status.fact.records.len() {
            bail!("request {id} names clips the ledger does not hold");
        }
        if let Some(c) = clips.iter().find(|c| c.status != ClipStatus::Verified) {
            bail!("clip {} is not intact in the store: not exported", c.number);
        }
        Ok((status, clips))
    }

    /// Opens clip `clip` (number or record hash) for playback as `actor`: their own as an
    /// officer, their department's as its head, or under `request`, an approved view
    /// request of theirs naming it. The playback event is in the ledger and the log before
    /// the clip is opened.
    ///
    /// # Errors
    /// Refused as above, a clip with nothing stored, or a store or ledger failure.
    pub fn open_clip(
        &self,
        actor: &Actor,
        clip: &str,
        request: Option<u64>,
    ) -> anyhow::Result<(ClipRow, Box<dyn Read + Send>)> {
        actor.refuse_it("playback")?;
        let record = self.find_clip(clip)?;
        let row = self
            .clips_by_record(&[record])?
            .pop()
            .with_context(|| format!("no clip {clip}"))?;
        let (request, approvals) = if actor.may_play(&row, &self.departments()?) {
            (None, Vec::new())
        } else {
            let Some(id) = request else {
                bail!(
                    "refused: clip {} is not yours to play as {}; it needs an approved view request (request --form view)",
                    row.number,
                    actor.role().name_zh()
                );
            };
            let status = self.request_status(id)?;
            let usable = status.fact.requester == actor.id()
                && status.fact.form == ExportForm::View
                && status.state == RequestState::Approved
                && status.fact.records.contains(&record);
            if !usable {
                bail!(
                    "refused: request {id} is not an approved view request of yours naming clip {} ({})",
                    row.number,
                    status.state.zh()
                );
            }
            (Some(id), status.approvals())
        };
        let stored: custody::MediaHash = row
            .stored_sha256
            .as_deref()
            .with_context(|| format!("clip {} has nothing stored", row.number))?
            .parse()?;
        let records: [RecordHash; 1] = [record];
        self.record_access(
            actor,
            AccessAction::Playback,
            row.case_number.as_deref(),
            &records,
            request,
            &approvals,
        )?;
        let reader = self.store().get(&stored)?;
        Ok((row, reader))
    }
}

/// The one case all `clips` are under, if they share one.
fn common_case(clips: &[ClipRow]) -> Option<String> {
    let first = clips.first()?.case_number.clone()?;
    clips
        .iter()
        .all(|c| c.case_number.as_deref() == Some(first.as_str()))
        .then_some(first)
}

/// The name of request `id`'s export: its folder, its image's stem, its volume id.
fn export_name(id: u64) -> String {
    format!("RQ{id:06}")
}
