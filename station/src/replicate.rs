//! Replication: a station keeps its local store and also pushes every object to a central
//! S3 Object Lock bucket, in the background. The queue is the ledger itself (objects
//! stored, minus the append-only `replicated` table), so it survives restarts and costs
//! no memory however long the network is down; objects go one at a time, first stored
//! first, at the pace the network takes them (back-pressure), and ingest never waits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use custody::MediaHash;
use serde::Serialize;

use crate::store::s3::{S3Settings, S3Store};
use crate::store::{EvidenceStore as _, Expected, StoreError};
use crate::{BUF_LEN, Station};

/// Objects read from the ledger per round.
const BATCH: usize = 32;
/// How often an idle replicator looks at the queue.
const IDLE: Duration = Duration::from_secs(2);
/// Longest wait between tries while the bucket is unreachable.
const MAX_BACKOFF: Duration = Duration::from_mins(1);

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Drained {
    /// Objects the bucket now holds (pushed, or found there already).
    pub pushed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Local objects that did not read back as their hash: not pushed, left for an audit.
    pub unreadable: Vec<String>,
}

/// Pushes what the queue holds until it is empty or `stop` is set. Objects in `skip` (or
/// found unreadable now, then added to it) are passed over.
///
/// # Errors
/// The bucket failing (unreachable, refusing) or the ledger; what was pushed before stays
/// recorded.
pub fn drain(
    station: &Station,
    target: &S3Store,
    skip: &mut BTreeSet<MediaHash>,
    stop: &AtomicBool,
) -> anyhow::Result<Drained> {
    let mut done = Drained::default();
    let mut buf = vec![0; BUF_LEN];
    loop {
        let batch = station.ledger().replication_backlog(BATCH + skip.len())?;
        let batch: Vec<_> = batch
            .into_iter()
            .filter(|q| !skip.contains(&q.hash))
            .collect();
        if batch.is_empty() {
            return Ok(done);
        }
        for queued in batch {
            if stop.load(Ordering::Relaxed) {
                return Ok(done);
            }
            let expected = Expected {
                size: queued.size,
                sha256: Some(queued.hash),
            };
            let pushed = station
                .store()
                .get(&queued.hash)
                .and_then(|mut src| target.put(&mut src, expected, &mut buf));
            match pushed {
                Ok(stored) => {
                    station
                        .ledger()
                        .mark_replicated(&queued.hash, stored.size, station.now())?;
                    done.pushed += 1;
                    done.bytes += stored.size;
                }
                // The local copy is not what it was stored as: never push it as evidence.
                Err(
                    e @ (StoreError::Unexpected { .. }
                    | StoreError::Source(_)
                    | StoreError::Io { .. }),
                ) => {
                    tracing::error!(sha256 = %queued.hash, error = %e, "local object unreadable or changed; not replicated");
                    skip.insert(queued.hash);
                    done.unreadable.push(queued.hash.to_hex());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The daemon's replicator: opens the bucket (retrying while it is unreachable), drains
/// the queue, waits for more; backs off (up to a minute) while the bucket fails.
pub fn run(station: &Station, settings: &S3Settings, stop: &AtomicBool) {
    let mut target = None;
    let mut skip = BTreeSet::new();
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let result = match &target {
            Some(target) => drain(station, target, &mut skip, stop),
            None => S3Store::open(settings)
                .map(|opened| {
                    tracing::info!(bucket = %settings.bucket, endpoint = %settings.endpoint, "replicating to the bucket");
                    target = Some(opened);
                    Drained::default()
                })
                .map_err(anyhow::Error::from),
        };
        let wait = match result {
            Ok(drained) => {
                if drained.pushed > 0 {
                    tracing::info!(
                        objects = drained.pushed,
                        bytes = drained.bytes,
                        "replicated"
                    );
                }
                backoff = Duration::from_secs(1);
                if target.is_some() { IDLE } else { backoff }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "replication paused");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        sleep_unless(stop, wait);
    }
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let tick = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        slept += tick;
    }
}
