//! Imports of a real busybox image (umoci-built OCI archive and layout, skopeo-made docker
//! archive), resolved by short and long names.

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::fixtures::busybox;
use crate::{ImageErrorKind, Store};

fn check_busybox(store: &Store, name: &str) -> crate::Image {
    let image = store.resolve(name).unwrap().expect("image resolves");
    assert_eq!(image.name, "docker.io/library/busybox:1.35");
    assert_eq!(image.config.cmd, vec!["/bin/sh".to_string()]);
    assert!(image.config.env.contains(&"PATH=/bin".to_string()));
    assert_eq!(image.layers.len(), 1);
    let busybox = image.layers[0].join("bin/busybox");
    assert!(busybox.is_file(), "{} exists", busybox.display());
    assert_eq!(fs::metadata(&busybox).unwrap().mode() & 0o111, 0o111);
    let sh = fs::symlink_metadata(image.layers[0].join("bin/sh")).unwrap();
    assert!(sh.file_type().is_symlink());
    image
}

#[test]
fn oci_archive_resolves_by_short_and_long_name() {
    let bb = busybox();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let infos = store.import(&bb.oci_archive, Some("busybox:1.35")).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].name, "docker.io/library/busybox:1.35");
    assert!(infos[0].digest.starts_with("sha256:"));
    assert!(infos[0].size > 1_000_000, "size counts the layer");
    let short = check_busybox(&store, "busybox:1.35");
    let long = check_busybox(&store, "docker.io/library/busybox:1.35");
    assert_eq!(short, long);
    assert_eq!(short.digest, infos[0].digest);
    // By digest, with and without the tag.
    let by_digest = store
        .resolve(&format!("busybox@{}", infos[0].digest))
        .unwrap()
        .expect("resolves by digest");
    assert_eq!(by_digest.layers, short.layers);
    assert!(store.resolve("busybox:1.36").unwrap().is_none());
    assert!(store.resolve("busybox").unwrap().is_none());
    assert_eq!(store.list().unwrap(), infos);
    assert!(root.path().join("images/index.json").is_file());
}

#[test]
fn oci_archive_with_tag_only_ref_name_asks_for_name() {
    let bb = busybox();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let err = store.import(&bb.oci_archive, None).unwrap_err();
    assert_eq!(err.kind(), ImageErrorKind::InvalidArgument);
    let msg = err.to_string();
    assert!(msg.contains("--name") && msg.contains("\"1\""), "{msg}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn docker_archive_names_from_repo_tags_and_shares_layers() {
    let bb = busybox();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let infos = store.import(&bb.docker_archive, None).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].name, "docker.io/library/busybox:1.35");
    let docker = check_busybox(&store, "busybox:1.35");

    // The same image from the OCI archive under another name: same layer directory.
    store.import(&bb.oci_archive, Some("oci/busybox")).unwrap();
    let oci = store.resolve("oci/busybox:latest").unwrap().unwrap();
    assert_eq!(oci.layers, docker.layers);
    assert_eq!(oci.config, docker.config);
    let layer_dirs = fs::read_dir(root.path().join("images/layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layer_dirs, 1);
    // --name overrides RepoTags.
    let renamed = store
        .import(&bb.docker_archive, Some("localhost:5000/bb:x"))
        .unwrap();
    assert_eq!(renamed[0].name, "localhost:5000/bb:x");
    assert_eq!(store.list().unwrap().len(), 3);
}

#[test]
fn oci_layout_directory() {
    let bb = busybox();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let infos = store.import(&bb.layout, Some("busybox:1.35")).unwrap();
    assert_eq!(infos[0].name, "docker.io/library/busybox:1.35");
    check_busybox(&store, "busybox:1.35");
}

#[test]
fn importing_twice_unpacks_once() {
    let bb = busybox();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    store.import(&bb.oci_archive, Some("busybox:1.35")).unwrap();
    let first = check_busybox(&store, "busybox:1.35");
    let before = fs::metadata(&first.layers[0]).unwrap();
    let file_before = fs::metadata(first.layers[0].join("bin/busybox")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    store.import(&bb.oci_archive, Some("busybox:1.35")).unwrap();
    let second = check_busybox(&store, "busybox:1.35");
    assert_eq!(first.layers, second.layers);
    let after = fs::metadata(&second.layers[0]).unwrap();
    let file_after = fs::metadata(second.layers[0].join("bin/busybox")).unwrap();
    assert_eq!(before.ino(), after.ino());
    assert_eq!(before.mtime(), after.mtime());
    assert_eq!(before.ctime_nsec(), after.ctime_nsec());
    assert_eq!(file_before.ino(), file_after.ino());
    assert_eq!(file_before.ctime_nsec(), file_after.ctime_nsec());
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn gzipped_oci_archive() {
    let bb = busybox();
    let work = tempfile::tempdir().unwrap();
    let gz = work.path().join("busybox-oci.tar.gz");
    let data = fs::read(&bb.oci_archive).unwrap();
    fs::write(&gz, super::fixtures::gzip(&data)).unwrap();
    let store = Store::open(&work.path().join("root")).unwrap();
    store.import(&gz, Some("busybox:1.35")).unwrap();
    check_busybox(&store, "busybox:1.35");
    // The decompressed copy does not linger.
    let tmp = work.path().join("root/images/tmp");
    assert_eq!(fs::read_dir(tmp).unwrap().count(), 0);
}
