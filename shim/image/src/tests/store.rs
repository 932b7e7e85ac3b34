//! Store behaviour on hand-built images: verification and rollback, naming rules, platform
//! selection, layer-less images, concurrent imports.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Barrier};

use serde_json::json;

use super::fixtures::{gzip, sha, LayerTar, Layout};
use crate::{ImageError, ImageErrorKind, Store};

fn simple_layer(content: &[u8]) -> Vec<u8> {
    LayerTar::new()
        .dir("bin/", 0o755)
        .file("bin/tool", content)
        .finish()
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Nothing of a failed import may be visible: no name, no blob, no layer, no temporary.
fn assert_empty_store(root: &Path) {
    let store = Store::open(root).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(count(&root.join("images/blobs/sha256")), 0, "blobs");
    assert_eq!(count(&root.join("images/layers/sha256")), 0, "layers");
    assert_eq!(count(&root.join("images/tmp")), 0, "tmp");
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_is_recorded() {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let desc = layout.image(&[simple_layer(b"good")], true, json!({}));
    layout.add(
        desc.clone(),
        json!({"org.opencontainers.image.ref.name": "x.io/a:1"}),
    );
    layout.write_index();
    // Flip a byte of the layer blob, keeping its size.
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(layout.blob_path(desc["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout.blob_path(&layer_digest);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();

    let root = work.path().join("root");
    let store = Store::open(&root).unwrap();
    let archive = layout.archive(&work.path().join("a.tar"));
    for source in [layout.dir.as_path(), archive.as_path()] {
        let err = store.import(source, None).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains(&layer_digest), "{err}");
        assert_eq!(err.kind(), ImageErrorKind::DataLoss);
        assert!(store.resolve("x.io/a:1").unwrap().is_none());
        assert_empty_store(&root);
    }

    // A blob longer than its descriptor says is refused too.
    bytes[last] ^= 0xff;
    bytes.extend_from_slice(b"trailing");
    fs::write(&blob, &bytes).unwrap();
    let err = store.import(&layout.dir, None).unwrap_err();
    assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err:?}");
    assert_empty_store(&root);
}

#[test]
fn wrong_diff_id_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let wrong = sha(b"not the layer");
    let desc = layout.image_with_diff_ids(
        &[simple_layer(b"x")],
        true,
        json!({}),
        Some(vec![wrong.clone()]),
    );
    layout.add(
        desc,
        json!({"org.opencontainers.image.ref.name": "x.io/a:1"}),
    );
    layout.write_index();
    let root = work.path().join("root");
    let err = Store::open(&root)
        .unwrap()
        .import(&layout.dir, None)
        .unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&wrong));
    assert_empty_store(&root);
}

#[test]
fn layerless_image_resolves_with_config() {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let config = json!({
        "Entrypoint": ["/pause"], "Cmd": null, "Env": ["A=1"], "WorkingDir": "/w",
        "User": "65535:65535", "StopSignal": "SIGINT", "Labels": {"k": "v"},
    });
    let desc = layout.image(&[], false, config);
    layout.add(
        desc,
        json!({"org.opencontainers.image.ref.name": "registry.k8s.io/pause:3.9"}),
    );
    layout.write_index();
    let store = Store::open(&work.path().join("root")).unwrap();
    let infos = store.import(&layout.dir, None).unwrap();
    assert_eq!(infos[0].created.as_deref(), Some("2024-01-02T03:04:05Z"));
    let image = store.resolve("registry.k8s.io/pause:3.9").unwrap().unwrap();
    assert!(image.layers.is_empty());
    let c = &image.config;
    assert_eq!(c.entrypoint, vec!["/pause"]);
    assert!(c.cmd.is_empty());
    assert_eq!(c.env, vec!["A=1"]);
    assert_eq!(c.working_dir.as_deref(), Some("/w"));
    assert_eq!(c.user.as_deref(), Some("65535:65535"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
}

#[test]
fn names_from_annotations() {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let a = layout.image(&[simple_layer(b"a")], true, json!({}));
    let b = layout.image(&[simple_layer(b"b")], false, json!({}));
    // containerd/docker style: full name in io.containerd.image.name, tag in ref.name.
    layout.add(
        a.clone(),
        json!({"io.containerd.image.name": "docker.io/library/alpha",
                                 "org.opencontainers.image.ref.name": "3.1"}),
    );
    layout.add(
        a,
        json!({"org.opencontainers.image.ref.name": "alpha:latest"}),
    );
    layout.add(
        b,
        json!({"org.opencontainers.image.ref.name": "quay.io/beta/beta:2"}),
    );
    layout.write_index();
    let store = Store::open(&work.path().join("root")).unwrap();

    // Two images: --name is ambiguous.
    let err = store.import(&layout.dir, Some("x")).unwrap_err();
    assert!(
        matches!(err, ImageError::NameAmbiguous { count: 2, .. }),
        "{err:?}"
    );

    let infos = store.import(&layout.dir, None).unwrap();
    let mut names: Vec<_> = infos.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "docker.io/library/alpha:3.1",
            "docker.io/library/alpha:latest",
            "quay.io/beta/beta:2"
        ]
    );
    let alpha = store.resolve("alpha:3.1").unwrap().unwrap();
    assert_eq!(
        alpha.digest,
        store.resolve("alpha").unwrap().unwrap().digest
    );
    assert_eq!(count(&work.path().join("root/images/layers/sha256")), 2);

    // No annotation at all: ask for --name.
    let mut bare = Layout::new(&work.path().join("bare"));
    let c = bare.image(&[], false, json!({}));
    bare.add(c, json!({}));
    bare.write_index();
    let err = store.import(&bare.dir, None).unwrap_err();
    assert!(matches!(err, ImageError::NameRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("--name"));
    store.import(&bare.dir, Some("bare")).unwrap();
    assert!(store
        .resolve("docker.io/library/bare:latest")
        .unwrap()
        .is_some());
}

#[test]
fn nested_index_picks_the_host_platform() {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let host = layout.image(&[simple_layer(b"host")], true, json!({"Cmd": ["host"]}));
    let other = layout.image(&[simple_layer(b"other")], true, json!({"Cmd": ["other"]}));
    let arch = crate::spec::host_arch();
    let mut other_d = other;
    other_d["platform"] = json!({"architecture": "s390x", "os": "linux"});
    let mut host_d = host.clone();
    host_d["platform"] = json!({"architecture": arch, "os": "linux"});
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [other_d, host_d]});
    let (digest, size) = layout.blob(&serde_json::to_vec(&index).unwrap());
    let index_desc = json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                            "digest": digest, "size": size});
    layout.add(
        index_desc,
        json!({"org.opencontainers.image.ref.name": "multi:1"}),
    );
    layout.write_index();
    let store = Store::open(&work.path().join("root")).unwrap();
    let infos = store.import(&layout.dir, None).unwrap();
    assert_eq!(infos[0].digest, host["digest"].as_str().unwrap());
    let image = store.resolve("multi:1").unwrap().unwrap();
    assert_eq!(image.config.cmd, vec!["host"]);
    assert_eq!(count(&work.path().join("root/images/layers/sha256")), 1);
}

/// A layout with one single-layer image named `name` whose layer blob is `blob` with media
/// type `media_type` (the config's diff_id is that of `tar`).
fn layout_with_layer(dir: &Path, name: &str, tar: &[u8], blob: &[u8], media_type: &str) -> Layout {
    let mut layout = Layout::new(dir);
    let desc = layout.image(&[tar.to_vec()], false, json!({}));
    let mpath = layout.blob_path(desc["digest"].as_str().unwrap());
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(mpath).unwrap()).unwrap();
    let (digest, size) = layout.blob(blob);
    manifest["layers"][0] = json!({"mediaType": media_type, "digest": digest, "size": size});
    let (digest, size) = layout.blob(&serde_json::to_vec(&manifest).unwrap());
    let desc = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size});
    layout.add(desc, json!({"org.opencontainers.image.ref.name": name}));
    layout.write_index();
    layout
}

#[test]
fn zstd_layers_are_unpacked_and_unknown_layer_types_refused() {
    let work = tempfile::tempdir().unwrap();
    let tar = simple_layer(b"zstd-content");
    let compressed = zstd::encode_all(&tar[..], 3).unwrap();
    let zstd_mt = "application/vnd.oci.image.layer.v1.tar+zstd";
    let layout = layout_with_layer(
        &work.path().join("a"),
        "z.io/z:1",
        &tar,
        &compressed,
        zstd_mt,
    );
    let root = work.path().join("root");
    let store = Store::open(&root).unwrap();
    store.import(&layout.dir, None).unwrap();
    let image = store.resolve("z.io/z:1").unwrap().unwrap();
    assert_eq!(
        fs::read(image.layers[0].join("bin/tool")).unwrap(),
        b"zstd-content"
    );

    let encrypted = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
    let tar = simple_layer(b"secret");
    let layout = layout_with_layer(
        &work.path().join("b"),
        "z.io/e:1",
        &tar,
        &gzip(&tar),
        encrypted,
    );
    let root = work.path().join("root2");
    let err = Store::open(&root)
        .unwrap()
        .import(&layout.dir, None)
        .unwrap_err();
    assert!(err.to_string().contains("+encrypted"), "{err}");
    assert_eq!(err.kind(), ImageErrorKind::Unimplemented);
    assert_empty_store(&root);
}

#[test]
fn not_an_image() {
    let work = tempfile::tempdir().unwrap();
    let plain = work.path().join("plain.tar");
    fs::write(&plain, LayerTar::new().file("hello", b"x").finish()).unwrap();
    let store = Store::open(&work.path().join("root")).unwrap();
    let err = store.import(&plain, None).unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err:?}");
    let err = store
        .import(&work.path().join("missing.tar"), None)
        .unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err:?}");
    let err = store.import(&plain, Some("Bad Name")).unwrap_err();
    assert!(
        matches!(err, ImageError::InvalidReference { .. }),
        "{err:?}"
    );
    assert!(store.resolve("UPPER").is_err());
}

#[test]
fn docker_archive_by_hand_with_gzip_layer_and_multiple_tags() {
    let work = tempfile::tempdir().unwrap();
    let layer = simple_layer(b"docker");
    let gz = gzip(&layer);
    let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["run"]}, "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]}});
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", &sha(&config_bytes)[7..]);
    let manifest =
        json!([{"Config": config_name, "RepoTags": ["d:1", "d:2"], "Layers": ["abc/layer.tar"]}]);
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        (config_name.as_str(), config_bytes),
        ("abc/layer.tar", gz),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        builder.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let archive = work.path().join("docker.tar");
    fs::write(&archive, builder.into_inner().unwrap()).unwrap();
    let store = Store::open(&work.path().join("root")).unwrap();
    let infos = store.import(&archive, None).unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].digest, infos[1].digest);
    let image = store.resolve("d:2").unwrap().unwrap();
    assert_eq!(image.config.cmd, vec!["run"]);
    assert_eq!(
        fs::read(image.layers[0].join("bin/tool")).unwrap(),
        b"docker"
    );
}

#[test]
fn concurrent_imports_both_succeed_with_one_copy() {
    let work = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&work.path().join("layout"));
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let desc = layout.image(&[simple_layer(&big)], true, json!({}));
    layout.add(desc, json!({}));
    layout.write_index();
    let archive = layout.archive(&work.path().join("a.tar"));
    let root = work.path().join("root");
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = ["one:1", "two:2"]
        .into_iter()
        .map(|name| {
            let (root, archive, barrier) = (root.clone(), archive.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                barrier.wait();
                store.import(&archive, Some(name))
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = Store::open(&root).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    let one = store.resolve("one:1").unwrap().unwrap();
    let two = store.resolve("two:2").unwrap().unwrap();
    assert_eq!(one.layers, two.layers);
    assert_eq!(count(&root.join("images/layers/sha256")), 1);
    assert_eq!(count(&root.join("images/blobs/sha256")), 3);
    assert_eq!(count(&root.join("images/tmp")), 0);
}

#[test]
fn error_kinds_map_to_the_wire() {
    let e = crate::normalize("UPPER").unwrap_err();
    assert_eq!(e.kind(), ImageErrorKind::InvalidArgument);
    let e = ImageError::UnsafeEntry {
        layer: "l".into(),
        entry: "e".into(),
        reason: "r",
    };
    assert_eq!(e.kind(), ImageErrorKind::DataLoss);
    let e = ImageError::io("read", "/x", std::io::Error::other("boom"));
    assert_eq!(e.kind(), ImageErrorKind::Internal);
    assert_eq!(
        e.to_string(),
        "cannot read /x",
        "the source is not repeated"
    );
}
