//! A test filesystem that forgets what was not made durable, the way a power cut does
//! (the approach of LazyFS, which Jepsen uses), held in memory and mounted with FUSE.
//!
//! Every file and folder has two states: what processes see, and what a power cut leaves.
//! The second moves only by `fsync`: a file's bytes and size when the file is synced, a
//! folder's names when the folder is synced. That is POSIX taken at its word, stricter
//! than ext4: a new file whose folder was never synced is gone after the cut, and so is a
//! rename or an unlink. [`Control`] arms a cut at the n-th change (from then on every
//! operation fails with EIO, as a dead disk does), makes one fsync fail with EIO the way
//! Linux does (the pages it should have written are marked clean, never reach the disk,
//! and the next fsync reports success: PostgreSQL's "fsyncgate"), and bounds the space so
//! that writes fail with ENOSPC.
//!
//! ```no_run
//! let (session, control) = crashfs::mount(std::path::Path::new("/tmp/m"), crashfs::Image::new())?;
//! control.cut_after(120);
//! // ... run the workload until it fails, then unmount and mount what survived:
//! let survived = crashfs::unmount(session, &control)?;
//! let (session, control) = crashfs::mount(std::path::Path::new("/tmp/m"), survived)?;
//! # drop((session, control)); Ok::<(), std::io::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};

/// How long the kernel may cache names and attributes: only the kernel changes this
/// filesystem, and it is remounted after every cut.
const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;
const BLOCK: u32 = 4096;
/// The page size a failed writeback loses data in.
const PAGE: usize = 4096;

/// The contents of a filesystem: what a mount starts from and what survives a cut.
#[derive(Debug, Clone)]
pub struct Image {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    /// The name it was last given, for telling which file a cut hit.
    name: OsString,
}

#[derive(Debug, Clone)]
enum Body {
    File {
        data: Vec<u8>,
        durable: Vec<u8>,
        /// Pages written since the last fsync (a failed fsync marks them clean, unwritten).
        dirty: BTreeSet<usize>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
    },
    /// A symbolic link: its target is written once, with its name.
    Symlink(std::path::PathBuf),
}

impl Image {
    /// An empty filesystem: one root folder.
    pub fn new() -> Self {
        let root = Node::new(
            Body::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
            0o755,
            (0, 0),
            OsString::from("/"),
        );
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
        }
    }

    /// What a power cut leaves: every name and byte that was synced, nothing else.
    fn after_power_cut(&self) -> Self {
        let mut nodes = HashMap::new();
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if nodes.contains_key(&ino) {
                continue;
            }
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            let mut node = node.clone();
            match &mut node.body {
                Body::File {
                    data,
                    durable,
                    dirty,
                } => {
                    data.clone_from(durable);
                    dirty.clear();
                }
                Body::Dir { entries, durable } => {
                    entries.clone_from(durable);
                    todo.extend(durable.values().copied());
                }
                Body::Symlink(_) => {}
            }
            nodes.insert(ino, node);
        }
        Self {
            nodes,
            next_ino: self.next_ino,
        }
    }

    /// Bytes of file data held (what processes see).
    fn used(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.body {
                Body::File { data, .. } => data.len() as u64,
                Body::Dir { .. } | Body::Symlink(_) => 0,
            })
            .sum()
    }
}

impl Default for Image {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    fn new(body: Body, perm: u16, (uid, gid): (u32, u32), name: OsString) -> Self {
        Self {
            body,
            perm,
            uid,
            gid,
            mtime: SystemTime::now(),
            name,
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.body {
            Body::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Body::Dir { .. } => (FileType::Directory, 0, 2),
            Body::Symlink(target) => (FileType::Symlink, target.as_os_str().len() as u64, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.mtime,
            crtime: self.mtime,
            kind,
            perm: self.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK,
            flags: 0,
        }
    }

    fn kind(&self) -> FileType {
        match self.body {
            Body::File { .. } => FileType::RegularFile,
            Body::Dir { .. } => FileType::Directory,
            Body::Symlink(_) => FileType::Symlink,
        }
    }
}

/// What the test has armed, and what happened.
#[derive(Debug, Default)]
struct Faults {
    /// Changes made so far (writes, truncations, creations, renames, unlinks, syncs).
    changes: u64,
    /// Cut the power when this change is about to be made.
    cut_at: Option<u64>,
    /// File fsyncs so far.
    syncs: u64,
    /// Fail this fsync with EIO.
    fail_sync_at: Option<u64>,
    /// Space for file data, in bytes: a write beyond it fails with ENOSPC.
    capacity: Option<u64>,
    /// The power is off: every operation fails with EIO.
    dead: bool,
    /// What the cut or the failed fsync hit, in words.
    hit: Option<String>,
}

struct Shared {
    image: Image,
    faults: Faults,
}

/// The handle a test keeps on a mounted filesystem: arms faults and reads what happened.
#[derive(Clone)]
pub struct Control(Arc<Mutex<Shared>>);

impl Control {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cuts the power just before the `n`-th change from now (1 is the next one): that
    /// change and everything after it fail with EIO, and what was not synced is gone.
    pub fn cut_after(&self, n: u64) {
        let mut s = self.lock();
        s.faults.cut_at = Some(s.faults.changes + n.max(1));
    }

    /// Cuts the power now.
    pub fn cut_now(&self) {
        let mut s = self.lock();
        s.power_cut("the test cut the power".to_owned());
    }

    /// Makes the `n`-th fsync of a file from now (1 is the next one) fail with EIO: the pages it
    /// should have written are lost (reads still show them until a power cut) and the
    /// next fsync of that file succeeds; what is written after the failure is synced.
    pub fn fail_sync_after(&self, n: u64) {
        let mut s = self.lock();
        s.faults.fail_sync_at = Some(s.faults.syncs + n.max(1));
    }

    /// Bounds the file data the filesystem holds (`None`: unbounded).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().faults.capacity = bytes;
    }

    /// Bytes of file data held now (what [`Control::set_capacity`] bounds).
    pub fn used(&self) -> u64 {
        self.lock().image.used()
    }

    /// Changes made since the mount: what a cut point is chosen among.
    pub fn changes(&self) -> u64 {
        self.lock().faults.changes
    }

    /// File fsyncs since the mount.
    pub fn syncs(&self) -> u64 {
        self.lock().faults.syncs
    }

    /// Whether the power is off.
    pub fn is_cut(&self) -> bool {
        self.lock().faults.dead
    }

    /// Whether the armed fsync failure has happened.
    pub fn sync_failed(&self) -> bool {
        let s = self.lock();
        s.faults.fail_sync_at.is_some_and(|at| s.faults.syncs >= at)
    }

    /// The operation the cut or the failed fsync hit, e.g. `write ledger.sqlite-wal`.
    pub fn hit(&self) -> Option<String> {
        self.lock().faults.hit.clone()
    }
}

impl Shared {
    fn power_cut(&mut self, what: String) {
        if !self.faults.dead {
            self.image = self.image.after_power_cut();
            self.faults.dead = true;
            self.faults.hit = Some(what);
        }
    }

    /// Counts a change to `ino`; cuts the power if this is the armed one. `Err` when the
    /// power is off.
    fn change(&mut self, op: &str, ino: u64) -> Result<(), Errno> {
        if self.faults.dead {
            return Err(Errno::EIO);
        }
        self.faults.changes += 1;
        if self.faults.cut_at == Some(self.faults.changes) {
            let what = format!("{op} {}", self.name(ino));
            self.power_cut(what);
            return Err(Errno::EIO);
        }
        Ok(())
    }

    fn alive(&self) -> Result<(), Errno> {
        if self.faults.dead {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn name(&self, ino: u64) -> String {
        self.image.nodes.get(&ino).map_or_else(
            || format!("inode {ino}"),
            |n| n.name.to_string_lossy().into_owned(),
        )
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.image.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.image.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File { .. } | Body::Symlink(_) => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.node_mut(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File { .. } | Body::Symlink(_) => Err(Errno::ENOTDIR),
        }
    }

    fn lookup(&self, dir: u64, name: &OsStr) -> Result<u64, Errno> {
        self.entries(dir)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn add(
        &mut self,
        dir: u64,
        name: &OsStr,
        body: Body,
        perm: u16,
        owner: (u32, u32),
    ) -> Result<FileAttr, Errno> {
        if self.entries(dir)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.change("create", dir)?;
        let ino = self.image.next_ino;
        self.image.next_ino += 1;
        let node = Node::new(body, perm, owner, name.to_owned());
        let attr = node.attr(ino);
        self.image.nodes.insert(ino, node);
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        self.touch(dir);
        Ok(attr)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(n) = self.image.nodes.get_mut(&ino) {
            n.mtime = SystemTime::now();
        }
    }

    fn resize(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let size = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
        self.room_to_reach(ino, size)?;
        self.change("truncate", ino)?;
        if let Body::File { data, dirty, .. } = &mut self.node_mut(ino)?.body {
            // The pages between the old and the new end change (cut off, or zeros).
            let old = data.len();
            dirty.extend(size.min(old) / PAGE..size.max(old).div_ceil(PAGE));
            data.resize(size, 0);
        }
        self.touch(ino);
        Ok(())
    }

    /// Whether file `ino` may grow to `end` bytes within the capacity.
    fn room_to_reach(&self, ino: u64, end: usize) -> Result<(), Errno> {
        let more = match &self.node(ino)?.body {
            Body::File { data, .. } => end.saturating_sub(data.len()) as u64,
            Body::Dir { .. } => return Err(Errno::EISDIR),
            Body::Symlink(_) => return Err(Errno::EINVAL),
        };
        match self.faults.capacity {
            Some(cap) if more > 0 && self.image.used() + more > cap => Err(Errno::ENOSPC),
            _ => Ok(()),
        }
    }

    fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<u32, Errno> {
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(bytes.len()).ok_or(Errno::EFBIG)?;
        self.room_to_reach(ino, end)?;
        self.change("write", ino)?;
        if let Body::File { data, dirty, .. } = &mut self.node_mut(ino)?.body {
            if data.len() < end {
                // A write past the end fills the gap with zeros: those pages change too.
                dirty.extend(data.len() / PAGE..start.div_ceil(PAGE));
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
            dirty.extend(start / PAGE..end.div_ceil(PAGE));
        }
        self.touch(ino);
        u32::try_from(bytes.len()).map_err(|_| Errno::EINVAL)
    }

    /// fsync of a file (its bytes) or a folder (its names).
    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        self.change("fsync", ino)?;
        let name = self.name(ino);
        let is_dir = matches!(self.node(ino)?.body, Body::Dir { .. });
        // A folder's sync never fails here: when ext4 cannot commit its journal it turns
        // the whole filesystem read-only, which leaves what a power cut leaves.
        if is_dir {
            return self.persist(ino, false);
        }
        self.faults.syncs += 1;
        let fail = self.faults.fail_sync_at == Some(self.faults.syncs);
        if fail {
            self.faults.hit = Some(format!("fsync {name}"));
        }
        self.persist(ino, fail)
    }

    /// Makes a node's changes durable, or (`fail`) loses its dirty pages with EIO.
    fn persist(&mut self, ino: u64, fail: bool) -> Result<(), Errno> {
        match &mut self.node_mut(ino)?.body {
            // The pages are marked clean without reaching the disk: lost, while reads
            // still show them; the next fsync has nothing of theirs to write.
            Body::File { dirty, .. } if fail => dirty.clear(),
            Body::Dir { .. } | Body::Symlink(_) if fail => {}
            Body::Symlink(_) => {}
            Body::File {
                data,
                durable,
                dirty,
            } => {
                durable.resize(data.len(), 0);
                for page in std::mem::take(dirty) {
                    let range = page * PAGE..((page + 1) * PAGE).min(data.len());
                    if range.start < range.end {
                        durable[range.clone()].copy_from_slice(&data[range]);
                    }
                }
            }
            Body::Dir { entries, durable } => durable.clone_from(entries),
        }
        if fail { Err(Errno::EIO) } else { Ok(()) }
    }

    fn remove(&mut self, dir: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(dir, name)?;
        match &self.node(ino)?.body {
            Body::Dir { entries, .. } if want_dir && !entries.is_empty() => {
                return Err(Errno::ENOTEMPTY);
            }
            Body::Dir { .. } if !want_dir => return Err(Errno::EISDIR),
            Body::File { .. } if want_dir => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.change(if want_dir { "rmdir" } else { "unlink" }, ino)?;
        self.entries_mut(dir)?.remove(name);
        self.touch(dir);
        Ok(())
    }

    fn rename(
        &mut self,
        (dir, name): (u64, &OsStr),
        (to_dir, to_name): (u64, &OsStr),
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let ino = self.lookup(dir, name)?;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return Err(Errno::EINVAL);
        }
        if let Ok(existing) = self.lookup(to_dir, to_name) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            match (&self.node(ino)?.body, &self.node(existing)?.body) {
                (Body::File { .. }, Body::Dir { .. }) => return Err(Errno::EISDIR),
                (Body::Dir { .. }, Body::File { .. }) => return Err(Errno::ENOTDIR),
                (Body::Dir { .. }, Body::Dir { entries, .. }) if !entries.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                _ => {}
            }
        }
        self.entries(to_dir)?;
        self.change("rename", ino)?;
        self.entries_mut(dir)?.remove(name);
        self.entries_mut(to_dir)?.insert(to_name.to_owned(), ino);
        to_name.clone_into(&mut self.node_mut(ino)?.name);
        self.touch(dir);
        self.touch(to_dir);
        Ok(())
    }
}

/// The FUSE side of a mounted [`Image`].
struct CrashFs(Control);

impl CrashFs {
    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> Result<T, Errno>) -> Result<T, Errno> {
        f(&mut self.0.lock())
    }
}

fn entry(reply: ReplyEntry, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn attr(reply: ReplyAttr, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(e) => reply.error(e),
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    u16::try_from(mode & !umask & 0o7777).unwrap_or(0o644)
}

impl Filesystem for CrashFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        entry(
            reply,
            self.with(|s| {
                s.alive()?;
                let ino = s.lookup(parent.0, name)?;
                Ok(s.node(ino)?.attr(ino))
            }),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        attr(
            reply,
            self.with(|s| {
                s.alive()?;
                Ok(s.node(ino.0)?.attr(ino.0))
            }),
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        attr(
            reply,
            self.with(|s| {
                s.alive()?;
                if let Some(size) = size {
                    s.resize(ino.0, size)?;
                }
                if mode.is_some() || uid.is_some() || gid.is_some() || mtime.is_some() {
                    s.change("setattr", ino.0)?;
                }
                let node = s.node_mut(ino.0)?;
                if let Some(mode) = mode {
                    node.perm = perm(mode, 0);
                }
                node.uid = uid.unwrap_or(node.uid);
                node.gid = gid.unwrap_or(node.gid);
                match mtime {
                    Some(TimeOrNow::SpecificTime(t)) => node.mtime = t,
                    Some(TimeOrNow::Now) => node.mtime = SystemTime::now(),
                    None => {}
                }
                Ok(node.attr(ino.0))
            }),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let body = Body::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        };
        entry(
            reply,
            self.with(|s| {
                s.add(
                    parent.0,
                    name,
                    body,
                    perm(mode, umask),
                    (req.uid(), req.gid()),
                )
            }),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.with(|s| s.remove(parent.0, name, false)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.with(|s| s.remove(parent.0, name, true)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        empty(
            reply,
            self.with(|s| s.rename((parent.0, name), (newparent.0, newname), flags)),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let body = Body::Symlink(target.to_path_buf());
        entry(
            reply,
            self.with(|s| s.add(parent.0, link_name, body, 0o777, (req.uid(), req.gid()))),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self.with(|s| {
            s.alive()?;
            match &s.node(ino.0)?.body {
                Body::Symlink(target) => Ok(target.as_os_str().as_encoded_bytes().to_vec()),
                Body::File { .. } | Body::Dir { .. } => Err(Errno::EINVAL),
            }
        });
        match result {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|s| {
            s.alive()?;
            s.node(ino.0).map(|_| ())
        }) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let result = self.with(|s| {
            s.alive()?;
            match &s.node(ino.0)?.body {
                Body::File { data, .. } => {
                    let start = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let end = start.saturating_add(size as usize).min(data.len());
                    Ok(data[start..end].to_vec())
                }
                Body::Dir { .. } => Err(Errno::EISDIR),
                Body::Symlink(_) => Err(Errno::EINVAL),
            }
        });
        match result {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|s| s.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.with(|s| s.alive()));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.with(|s| s.sync(ino.0)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|s| s.alive().and_then(|()| s.entries(ino.0).map(|_| ()))) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = self.with(|s| {
            s.alive()?;
            let mut all = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (ino.0, FileType::Directory, OsString::from("..")),
            ];
            for (name, &child) in s.entries(ino.0)? {
                all.push((child, s.node(child)?.kind(), name.clone()));
            }
            Ok(all)
        });
        match listing {
            Ok(all) => {
                let skip = usize::try_from(offset).unwrap_or(usize::MAX);
                for (i, (child, kind, name)) in all.into_iter().enumerate().skip(skip) {
                    if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.with(|s| s.sync(ino.0)));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (used, capacity) = {
            let s = self.0.lock();
            (s.image.used(), s.faults.capacity.unwrap_or(64 << 30))
        };
        let blocks = capacity / u64::from(BLOCK);
        let free = capacity.saturating_sub(used) / u64::from(BLOCK);
        reply.statfs(blocks, free, free, 1 << 20, 1 << 20, BLOCK, 255, BLOCK);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let body = Body::File {
            data: Vec::new(),
            durable: Vec::new(),
            dirty: BTreeSet::new(),
        };
        match self.with(|s| {
            s.add(
                parent.0,
                name,
                body,
                perm(mode, umask),
                (req.uid(), req.gid()),
            )
        }) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}

/// Mounts `image` at `mountpoint` (an empty folder) and returns the session (dropping it
/// unmounts) and the control handle. Needs root or `fusermount3`.
///
/// # Errors
/// The mount failed (no `/dev/fuse`, no permission, not a folder).
pub fn mount(mountpoint: &Path, image: Image) -> io::Result<(BackgroundSession, Control)> {
    let control = Control(Arc::new(Mutex::new(Shared {
        image,
        faults: Faults::default(),
    })));
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("crashfs".to_owned()),
        MountOption::Subtype("crashfs".to_owned()),
    ];
    let session = fuser::spawn_mount(CrashFs(control.clone()), mountpoint, &config)?;
    Ok((session, control))
}

/// Unmounts and returns what a power cut at this moment leaves (if the power was cut
/// already, what that cut left). Every process using the mount must have ended.
///
/// # Errors
/// The unmount failed (a file is still open).
pub fn unmount(session: BackgroundSession, control: &Control) -> io::Result<Image> {
    session.umount_and_join()?;
    let s = control.lock();
    Ok(if s.faults.dead {
        s.image.clone()
    } else {
        s.image.after_power_cut()
    })
}
