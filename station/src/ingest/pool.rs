//! What every slot shares: a fixed pool of copy buffers (memory does not grow with slots
//! or clip sizes), and one dock session per device at a time.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};

/// A fixed set of copy buffers shared by every slot: taking one waits while all are in use,
/// so memory is `parallel_copies × BUF_LEN` however many slots or however large the clips.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    returned: Condvar,
}

impl BufferPool {
    /// A pool of `n` buffers of `len` bytes.
    pub fn new(n: usize, len: usize) -> Self {
        Self {
            free: Mutex::new((0..n).map(|_| vec![0; len]).collect()),
            returned: Condvar::new(),
        }
    }

    /// Takes a buffer, waiting for one to be returned if none is free.
    pub fn take(&self) -> PooledBuffer<'_> {
        // std Mutex: held only to push/pop a Vec, never across I/O.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(buf) = free.pop() {
                return PooledBuffer {
                    pool: self,
                    buf: Some(buf),
                };
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A buffer on loan from a [`BufferPool`]; returned when dropped.
#[derive(Debug)]
pub struct PooledBuffer<'p> {
    pool: &'p BufferPool,
    buf: Option<Vec<u8>>,
}

impl PooledBuffer<'_> {
    /// The bytes.
    pub fn as_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for PooledBuffer<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let mut free = self
                .pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            free.push(buf);
            self.pool.returned.notify_one();
        }
    }
}

/// Devices with a dock session in progress. A device can be seen twice at once (docked in
/// a slot while its upload is ingested); two sessions would verify and commit the same
/// chain side by side.
#[derive(Debug, Default)]
pub(crate) struct DeviceSessions {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// A device's turn, until dropped.
pub(crate) struct DeviceTurn<'a> {
    sessions: &'a DeviceSessions,
    serial: String,
}

impl DeviceSessions {
    /// Waits until no session holds `serial`, then holds it.
    pub(crate) fn enter(&self, serial: &str) -> DeviceTurn<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while busy.contains(serial) {
            tracing::info!(serial, "device already in a session; waiting for it to end");
            busy = self
                .freed
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(serial.to_owned());
        DeviceTurn {
            sessions: self,
            serial: serial.to_owned(),
        }
    }
}

impl Drop for DeviceTurn<'_> {
    fn drop(&mut self) {
        self.sessions
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.serial);
        self.sessions.freed.notify_all();
    }
}
