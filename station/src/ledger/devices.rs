//! Enrolled devices (serial, hw-profile, public key) and whom each is issued to.

use chrono::{DateTime, Utc};
use custody::PublicKey;
use rusqlite::params;
use serde::Serialize;

use super::{Ledger, LedgerError, db_time};

/// A device IT enrolled.
#[derive(Debug, Clone, Serialize)]
pub struct EnrolledDevice {
    /// 产品序号.
    pub serial: String,
    /// Its hw-profile id.
    pub hw_profile: String,
    /// Its public key.
    #[serde(skip)]
    pub key: PublicKey,
    /// The key's id.
    pub key_id: String,
    /// When it was enrolled (UTC, RFC 3339).
    pub enrolled_at: String,
    /// Officers it is issued to: (执法证号, name).
    pub officers: Vec<(String, String)>,
}

impl Ledger {
    /// Enrols a device with its key and officers.
    ///
    /// # Errors
    /// [`LedgerError::Invalid`] when the serial or key is already enrolled.
    pub fn enroll(
        &mut self,
        serial: &str,
        hw_profile: &str,
        key: &PublicKey,
        officers: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO devices (serial, hw_profile, key_pem, key_id, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                serial,
                hw_profile,
                key.to_pem(),
                key.key_id().0,
                db_time(now)
            ],
        )?;
        if inserted == 0 {
            return Err(LedgerError::Invalid(format!(
                "device {serial} or key {} is already enrolled",
                key.key_id()
            )));
        }
        for (cert, name) in officers {
            tx.execute(
                "INSERT INTO assignments (serial, officer_cert, officer_name, assigned_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![serial, cert, name, db_time(now)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The enrolled device with `serial`.
    ///
    /// # Errors
    /// SQL failure or a damaged stored key.
    pub fn device(&self, serial: &str) -> Result<Option<EnrolledDevice>, LedgerError> {
        Ok(self.devices()?.into_iter().find(|d| d.serial == serial))
    }

    /// Every enrolled device, by serial.
    ///
    /// # Errors
    /// SQL failure or a damaged stored key.
    pub fn devices(&self) -> Result<Vec<EnrolledDevice>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, hw_profile, key_pem, key_id, enrolled_at FROM devices ORDER BY serial",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (serial, hw_profile, pem, key_id, enrolled_at) = row?;
            let key = PublicKey::from_pem(&pem)
                .map_err(|e| LedgerError::Invalid(format!("stored key of {serial}: {e}")))?;
            let mut officers = self.conn.prepare(
                "SELECT officer_cert, officer_name FROM assignments WHERE serial = ?1 ORDER BY rowid",
            )?;
            let officers = officers
                .query_map([&serial], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            out.push(EnrolledDevice {
                serial,
                hw_profile,
                key,
                key_id,
                enrolled_at,
                officers,
            });
        }
        Ok(out)
    }
}
