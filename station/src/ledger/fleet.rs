//! Fleet state heard over MQTT: the latest telemetry and status of each device. Not
//! evidence: replaced each time, never used to decide what was stored.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Ledger, LedgerError};

/// The latest a device told the fleet broker.
#[derive(Debug, Clone)]
pub struct HeardDevice {
    /// Product serial.
    pub serial: String,
    /// When its last message arrived (RFC 3339, station clock).
    pub received_at: String,
    /// Its last telemetry JSON, if any arrived.
    pub telemetry: Option<String>,
    /// `online` / `offline`, if known.
    pub status: Option<String>,
}

impl Ledger {
    /// Keeps the latest telemetry heard from a device (fleet state, replaced each time).
    ///
    /// # Errors
    /// [`LedgerError::Sql`].
    pub fn note_telemetry(
        &self,
        serial: &str,
        telemetry: &str,
        received: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO device_telemetry (serial, received_at, telemetry) VALUES (?1, ?2, ?3)
             ON CONFLICT (serial) DO UPDATE SET received_at = ?2, telemetry = ?3",
            params![serial, received.to_rfc3339(), telemetry],
        )?;
        Ok(())
    }

    /// Keeps a device's last `online`/`offline` status.
    ///
    /// # Errors
    /// [`LedgerError::Sql`].
    pub fn note_status(
        &self,
        serial: &str,
        status: &str,
        received: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO device_telemetry (serial, received_at, status) VALUES (?1, ?2, ?3)
             ON CONFLICT (serial) DO UPDATE SET status = ?3",
            params![serial, received.to_rfc3339(), status],
        )?;
        Ok(())
    }

    /// Every device heard on the fleet broker: serial, when its telemetry arrived, the
    /// telemetry JSON and its last status.
    ///
    /// # Errors
    /// [`LedgerError::Sql`].
    pub fn fleet(&self) -> Result<Vec<HeardDevice>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, received_at, telemetry, status FROM device_telemetry ORDER BY serial",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(HeardDevice {
                serial: row.get(0)?,
                received_at: row.get(1)?,
                telemetry: row.get(2)?,
                status: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
