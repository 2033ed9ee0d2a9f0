//! The signed receipt: what the ledger holds of a device, with inclusion proofs to the
//! checkpoint just signed, written into the device's inbox.

use std::path::Path;

use custody::{RECEIPT_V1, ReceiptBody, ReceiptEntry, encode_proof, layout};

use crate::Station;
use crate::ledger::{LedgerError, SessionId};

use super::IngestError;
use super::session::Identified;

impl Station {
    /// Writes the receipt into the device's inbox and keeps a copy in the ledger. A device
    /// that cannot take it (read-only, gone) gets it at the next dock.
    pub(super) fn deliver_receipt(
        &self,
        root: &Path,
        session: SessionId,
        device: &Identified,
        checkpoint_note: &str,
        size: u64,
    ) -> Result<Option<String>, IngestError> {
        let records = self.ledger().unreceipted(&device.serial)?;
        let Some(max_seq) = records.last().map(|r| r.seq) else {
            return Ok(None);
        };
        let mut entries = Vec::with_capacity(records.len());
        for r in &records {
            entries.push(ReceiptEntry {
                seq: r.seq,
                record: r.hash,
                log_index: r.log_index,
                proof: encode_proof(&self.ledger().inclusion_proof(r.log_index, size)?),
            });
        }
        let body = ReceiptBody {
            format: RECEIPT_V1.into(),
            station: self.cfg.origin.clone(),
            device: device.serial.clone(),
            device_key_id: device.key_id.clone(),
            issued: self.now().with_timezone(&self.cfg.utc_offset),
            checkpoint: checkpoint_note.into(),
            entries,
        };
        let bytes = body
            .to_bytes()
            .map_err(|e| LedgerError::Invalid(format!("receipt: {e}")))?;
        let sig = self.key.sign(&bytes).map_err(IngestError::Sign)?;
        let dir = layout::inbox_dir(root, &device.serial);
        let path = dir.join(layout::receipt_file_name(size));
        let written = layout::create_dir_durable(&dir)
            .and_then(|()| layout::write_atomic(&path.with_extension("sig"), &sig.0))
            .and_then(|()| layout::write_atomic(&path, &bytes));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "receipt not delivered; re-issued at the next dock");
            return Ok(None);
        }
        self.ledger().commit_receipt(
            session,
            &device.serial,
            (max_seq, size),
            &bytes,
            &sig,
            self.now(),
        )?;
        Ok(path
            .strip_prefix(root)
            .ok()
            .map(|p| p.display().to_string()))
    }
}
