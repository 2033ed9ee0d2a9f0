//! The filesystem keeps exactly what was synced: files, names, renames and unlinks each
//! need their fsync to survive a cut; a failed fsync loses its data even though the next
//! fsync succeeds; a bounded filesystem refuses writes with ENOSPC.
#![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

use std::fs::{self, File};
use std::io::{ErrorKind, Write as _};
use std::path::Path;

use crashfs::{Control, Image};
use fuser::BackgroundSession;

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

/// Writes `name` under `dir` with `bytes`, syncing the file if `sync_file`.
fn write(dir: &Path, name: &str, bytes: &[u8], sync_file: bool) {
    let mut f = File::create(dir.join(name)).unwrap();
    f.write_all(bytes).unwrap();
    if sync_file {
        f.sync_all().unwrap();
    }
}

struct Mounted {
    dir: tempfile::TempDir,
    session: Option<BackgroundSession>,
    control: Control,
}

impl Mounted {
    fn new(image: Image) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (session, control) = crashfs::mount(dir.path(), image).unwrap();
        Self {
            dir,
            session: Some(session),
            control,
        }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    /// Cuts the power, unmounts, and mounts what survived at the same place.
    fn power_cycle(&mut self) {
        self.control.cut_now();
        let image = crashfs::unmount(self.session.take().unwrap(), &self.control).unwrap();
        let (session, control) = crashfs::mount(self.dir.path(), image).unwrap();
        self.session = Some(session);
        self.control = control;
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

#[test]
fn only_what_was_synced_with_its_folder_survives_a_power_cut() {
    let mut m = Mounted::new(Image::new());
    let root = m.root().to_path_buf();
    write(&root, "synced-both", b"kept", true);
    write(&root, "synced-file-only", b"name lost", true);
    write(&root, "never-synced", b"lost", false);
    sync_dir(&root);
    // After the folder sync: a new name, and a synced file whose folder is not synced again.
    write(&root, "after-dir-sync", b"name not durable", true);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(root.join("synced-both"))
        .unwrap();
    f.write_all(b" and more").unwrap(); // never synced
    drop(f);
    m.power_cycle();

    assert_eq!(fs::read(root.join("synced-both")).unwrap(), b"kept");
    assert_eq!(
        fs::read(root.join("synced-file-only")).unwrap(),
        b"name lost",
        "its name was in the folder when the folder was synced"
    );
    assert_eq!(
        fs::read(root.join("never-synced")).unwrap(),
        b"",
        "the name survived with the folder, the bytes did not"
    );
    assert_eq!(
        fs::metadata(root.join("after-dir-sync"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn renames_and_unlinks_need_their_folder_synced_and_new_folders_their_parent() {
    let mut m = Mounted::new(Image::new());
    let root = m.root().to_path_buf();
    fs::create_dir(root.join("a")).unwrap();
    sync_dir(&root);
    let a = root.join("a");
    write(&a, "old", b"1", true);
    write(&a, "gone", b"2", true);
    sync_dir(&a);
    fs::rename(a.join("old"), a.join("new")).unwrap();
    fs::remove_file(a.join("gone")).unwrap();
    fs::create_dir_all(root.join("b/c")).unwrap();
    write(&root.join("b/c"), "deep", b"3", true);
    sync_dir(&root.join("b/c"));
    m.power_cycle();
    let names: Vec<_> = fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"old".to_owned()) && names.contains(&"gone".to_owned()));
    assert!(!root.join("b").exists(), "b was never synced into the root");

    // Synced, both survive.
    fs::rename(a.join("old"), a.join("new")).unwrap();
    fs::remove_file(a.join("gone")).unwrap();
    sync_dir(&a);
    m.power_cycle();
    assert_eq!(fs::read(a.join("new")).unwrap(), b"1");
    assert!(!a.join("old").exists() && !a.join("gone").exists());
}

#[test]
fn after_a_failed_fsync_the_next_one_succeeds_but_the_data_is_not_durable() {
    let mut m = Mounted::new(Image::new());
    let root = m.root().to_path_buf();
    write(&root, "f", b"old", true);
    sync_dir(&root);
    m.control.fail_sync_after(1);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(root.join("f"))
        .unwrap();
    f.write_all(b"new").unwrap();
    let err = f.sync_all().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "EIO: {err}");
    assert!(m.control.sync_failed());
    assert!(m.control.hit().unwrap().contains("fsync f"));
    f.sync_all().unwrap(); // reports success, as Linux does after a writeback error
    drop(f);
    assert_eq!(
        fs::read(root.join("f")).unwrap(),
        b"new",
        "the page cache still shows it"
    );
    m.power_cycle();
    assert_eq!(fs::read(root.join("f")).unwrap(), b"old");

    // Written again after the failure, it is synced like any write.
    write(&root, "g", b"before", true);
    sync_dir(&root);
    m.control.fail_sync_after(1);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("g"))
        .unwrap();
    f.write_all(b"AFTER!").unwrap();
    f.sync_all().unwrap_err();
    f.write_all(b"\nagain").unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.power_cycle();
    assert_eq!(
        fs::read(root.join("g")).unwrap(),
        b"AFTER!\nagain",
        "the page was dirtied again after the failure, so it is written whole"
    );
}

#[test]
fn a_cut_at_the_nth_change_fails_it_and_everything_after_it() {
    let m = Mounted::new(Image::new());
    let root = m.root().to_path_buf();
    let before = m.control.changes();
    m.control.cut_after(3);
    let mut f = File::create(root.join("x")).unwrap(); // change 1
    f.write_all(b"a").unwrap(); // change 2
    let err = f.sync_all().unwrap_err(); // change 3: the cut
    assert_eq!(err.raw_os_error(), Some(5));
    assert!(m.control.is_cut());
    assert_eq!(m.control.changes(), before + 3);
    assert!(fs::read_dir(&root).is_err(), "a dead disk answers nothing");
    assert_eq!(m.control.hit().unwrap(), "fsync x");
}

#[test]
fn a_bounded_filesystem_refuses_writes_past_its_capacity_and_takes_them_after_room_returns() {
    let m = Mounted::new(Image::new());
    let root = m.root().to_path_buf();
    m.control.set_capacity(Some(64 << 10));
    let mut f = File::create(root.join("big")).unwrap();
    let err = f.write_all(&vec![7; 128 << 10]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    let free = {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&root)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        free.lines().nth(1).unwrap().trim().parse::<u64>().unwrap() <= 64 << 10,
        "df shows the bound: {free}"
    );
    m.control.set_capacity(None);
    f.write_all(&vec![7; 128 << 10]).unwrap();
}

#[test]
fn a_file_cut_short_and_grown_again_survives_with_zeros_not_its_old_bytes() {
    use std::io::{Seek as _, SeekFrom};
    let mut m = Mounted::new(Image::new());
    let root = m.root().to_path_buf();
    write(&root, "f", &[7u8; 3 * 4096], true);
    sync_dir(&root);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("f"))
        .unwrap();
    f.set_len(0).unwrap();
    f.seek(SeekFrom::Start(2 * 4096)).unwrap();
    f.write_all(b"end").unwrap();
    f.sync_all().unwrap();
    drop(f);
    m.power_cycle();
    let bytes = fs::read(root.join("f")).unwrap();
    assert_eq!(bytes.len(), 2 * 4096 + 3);
    assert!(
        bytes[..2 * 4096].iter().all(|&b| b == 0),
        "the old bytes came back"
    );
    assert_eq!(&bytes[2 * 4096..], b"end");
}
