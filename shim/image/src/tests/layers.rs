//! Layer unpacking on hand-built images: whiteouts, preserved metadata, and containment of
//! hostile entries.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_json::json;
use tar::EntryType;

use super::fixtures::{LayerTar, Layout, MTIME};
use crate::{ImageError, Store};

/// Imports a single image made of `layers` under `name` into a fresh store in `work/root`.
fn import(work: &Path, layers: &[Vec<u8>], gzipped: bool) -> (Store, Result<(), ImageError>) {
    let mut layout = Layout::new(&work.join("layout"));
    let desc = layout.image(layers, gzipped, json!({"Cmd": ["/bin/sh"]}));
    layout.add(
        desc,
        json!({"org.opencontainers.image.ref.name": "test.local/img:1"}),
    );
    layout.write_index();
    let store = Store::open(&work.join("root")).unwrap();
    let result = store.import(&layout.dir, None).map(|_| ());
    (store, result)
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let work = tempfile::tempdir().unwrap();
    let lower = LayerTar::new()
        .dir("dir/", 0o755)
        .file("dir/a", b"a")
        .file("file", b"lower")
        .finish();
    let upper = LayerTar::new()
        .file(".wh.file", b"")
        .dir("dir/", 0o755)
        .file("dir/.wh..wh..opq", b"")
        .file("dir/c", b"c")
        .file("deep/er/.wh.gone", b"")
        .file(".wh..wh.plnk", b"")
        .finish();
    let (store, result) = import(work.path(), &[lower, upper], true);
    result.unwrap();
    let image = store.resolve("test.local/img:1").unwrap().unwrap();
    assert_eq!(image.layers.len(), 2);
    let (lower, upper) = (&image.layers[0], &image.layers[1]);
    assert_eq!(fs::read(lower.join("file")).unwrap(), b"lower");

    let whiteout = fs::symlink_metadata(upper.join("file")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!upper.join(".wh.file").exists());
    let gone = fs::symlink_metadata(upper.join("deep/er/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert!(!upper.join(".wh..wh.plnk").exists());

    let opaque = xattr::get(upper.join("dir"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(!upper.join("dir/.wh..wh..opq").exists());
    assert_eq!(fs::read(upper.join("dir/c")).unwrap(), b"c");
    assert!(xattr::get(lower.join("dir"), "trusted.overlay.opaque")
        .unwrap()
        .is_none());

    // Check against the reference, the kernel: a read-only overlay of the two layers, mounted
    // in a private mount namespace, hides `file` and the lower contents of `dir`.
    let merged = work.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={}:{} {m} && ls -A {m} && echo -- && ls -A {m}/dir",
        upper.display(),
        lower.display(),
        m = merged.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "overlay mount failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "deep\ndir\n--\nc\n");
}

#[test]
fn metadata_is_preserved() {
    let work = tempfile::tempdir().unwrap();
    let layer = LayerTar::new()
        .raw("./", EntryType::Directory, "", b"", 0o755, 0, 0)
        .raw("ro/", EntryType::Directory, "", b"", 0o555, 1000, 1001)
        .raw("ro/suid", EntryType::Regular, "", b"#!", 0o4755, 1000, 1001)
        .symlink("ro/link", "/etc/passwd")
        .hardlink("ro/hard", "ro/suid")
        .raw("fifo", EntryType::Fifo, "", b"", 0o600, 0, 0)
        .raw("/abs/file", EntryType::Regular, "", b"abs", 0o640, 0, 0)
        .finish();
    let (store, result) = import(work.path(), &[layer], false);
    result.unwrap();
    let image = store.resolve("test.local/img:1").unwrap().unwrap();
    let l = &image.layers[0];

    let ro = fs::symlink_metadata(l.join("ro")).unwrap();
    assert_eq!(ro.mode() & 0o7777, 0o555);
    assert_eq!((ro.uid(), ro.gid()), (1000, 1001));
    assert_eq!(ro.mtime(), MTIME as i64);

    let suid = fs::symlink_metadata(l.join("ro/suid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!((suid.uid(), suid.gid()), (1000, 1001));
    assert_eq!(suid.mtime(), MTIME as i64);

    let link = fs::symlink_metadata(l.join("ro/link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        fs::read_link(l.join("ro/link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(link.mtime(), MTIME as i64);

    let hard = fs::symlink_metadata(l.join("ro/hard")).unwrap();
    assert_eq!(hard.ino(), suid.ino());
    assert_eq!(hard.nlink(), 2);

    assert!(fs::symlink_metadata(l.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    // An absolute entry name lands inside the layer.
    assert_eq!(fs::read(l.join("abs/file")).unwrap(), b"abs");
}

/// Each hostile layer must fail to import, write nothing outside the store, and leave no name
/// and no layer directory behind.
#[test]
fn escaping_entries_are_rejected() {
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let outside_str = outside.to_str().unwrap().to_string();
    let victim = work.path().join("victim");
    fs::write(&victim, b"original").unwrap();
    let victim_str = victim.to_str().unwrap().to_string();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            LayerTar::new().file("../../../escape", b"x").finish(),
        ),
        (
            "dot-dot inside",
            LayerTar::new().file("a/../../escape", b"x").finish(),
        ),
        (
            "through a symlink to an absolute dir",
            LayerTar::new()
                .symlink("link", &outside_str)
                .file("link/pwned", b"x")
                .finish(),
        ),
        (
            "through a relative symlink",
            LayerTar::new()
                .symlink("link", "../../../../../../../..")
                .file(&format!("link{outside_str}/pwned"), b"x")
                .finish(),
        ),
        (
            "dir replaced by a symlink, then written through",
            LayerTar::new()
                .dir("d/", 0o755)
                .symlink("d", &outside_str)
                .file("d/pwned", b"x")
                .finish(),
        ),
        (
            "hard link to ..",
            LayerTar::new()
                .hardlink("h", &format!("../../..{victim_str}"))
                .finish(),
        ),
        (
            "hard link through a symlink",
            LayerTar::new()
                .symlink("s", work.path().to_str().unwrap())
                .hardlink("h", "s/victim")
                .finish(),
        ),
        (
            "whiteout through a symlink",
            LayerTar::new()
                .symlink("s", work.path().to_str().unwrap())
                .file("s/.wh.victim", b"")
                .finish(),
        ),
        (
            "whiteout of ..",
            LayerTar::new()
                .dir("a/", 0o755)
                .file("a/.wh...", b"")
                .finish(),
        ),
        (
            "whiteout of nothing",
            LayerTar::new().file(".wh.", b"").finish(),
        ),
        (
            "opaque marker through a symlink",
            LayerTar::new()
                .symlink("s", &outside_str)
                .file("s/.wh..wh..opq", b"")
                .finish(),
        ),
    ];
    for (what, layer) in cases {
        let case = tempfile::tempdir().unwrap();
        let (store, result) = import(case.path(), &[layer], false);
        let err = result.expect_err(what);
        assert!(
            matches!(err, ImageError::UnsafeEntry { .. }),
            "{what}: {err:?}"
        );
        assert!(store.list().unwrap().is_empty(), "{what}: no name");
        let layers = case.path().join("root/images/layers/sha256");
        assert_eq!(
            fs::read_dir(&layers).unwrap().count(),
            0,
            "{what}: no layer"
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{what}: outside"
        );
        assert!(xattr::get(&outside, "trusted.overlay.opaque")
            .unwrap()
            .is_none());
        assert_eq!(fs::read(&victim).unwrap(), b"original", "{what}: victim");
        assert!(!work.path().join("escape").exists(), "{what}");
        assert!(!case.path().join("escape").exists(), "{what}");
        assert!(!case.path().join("root/escape").exists(), "{what}");
    }
}

#[test]
fn symlinks_pointing_outside_are_kept_as_links() {
    // A symlink to an absolute path is normal (it is resolved inside the container); only
    // writing *through* it is refused.
    let work = tempfile::tempdir().unwrap();
    let layer = LayerTar::new()
        .symlink("etc-link", "/etc")
        .symlink("up", "../../../..")
        .finish();
    let (store, result) = import(work.path(), &[layer], false);
    result.unwrap();
    let l = &store.resolve("test.local/img:1").unwrap().unwrap().layers[0];
    assert_eq!(
        fs::read_link(l.join("etc-link")).unwrap(),
        Path::new("/etc")
    );
    assert_eq!(
        fs::read_link(l.join("up")).unwrap(),
        Path::new("../../../..")
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let work = tempfile::tempdir().unwrap();
    let layer = LayerTar::new()
        .file("x", b"first")
        .file("x", b"second")
        .symlink("y", "x")
        .file("y", b"file now")
        .finish();
    let (store, result) = import(work.path(), &[layer], false);
    result.unwrap();
    let l = &store.resolve("test.local/img:1").unwrap().unwrap().layers[0];
    assert_eq!(fs::read(l.join("x")).unwrap(), b"second");
    assert!(fs::symlink_metadata(l.join("y")).unwrap().is_file());
    assert_eq!(fs::read(l.join("y")).unwrap(), b"file now");
}
