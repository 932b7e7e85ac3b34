//! `image` volumes and `serviceAccountToken` projections end to end, each next to what the
//! Kubernetes documentation says (quoted in the test's comment).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use podshim_tests::*;
use sha2::{Digest, Sha256};

const SUITE: u32 = 24;
const T: Duration = Duration::from_secs(60);

fn value(out: &str, container: &str, tag: &str) -> String {
    lines_of(out, container)
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{tag}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {tag}= line of {container} in:\n{out}"))
}

/// A tar of `files` (path, content; an empty content with a `.wh.` name is a whiteout).
fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes `data` as a blob of the layout; returns its descriptor.
fn blob(dir: &Path, media: &str, data: &[u8]) -> serde_json::Value {
    let hex = hex::encode(Sha256::digest(data));
    std::fs::write(dir.join("blobs/sha256").join(&hex), data).unwrap();
    serde_json::json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": data.len()})
}

/// An OCI layout of two layers: the second adds `data/top.txt` and deletes `data/gone.txt`.
fn two_layer_image(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let l1 = layer(&[("data/base.txt", "base\n"), ("data/gone.txt", "gone\n")]);
    let l2 = layer(&[("data/top.txt", "top\n"), ("data/.wh.gone.txt", "")]);
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let layers = [blob(dir, tar, &l1), blob(dir, tar, &l2)];
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layers[0]["digest"], layers[1]["digest"]]},
    });
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": layers,
    });
    let mut m = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "1"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [m]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// "The image volume source represents an OCI object (a container image or artifact) which is
/// available on the kubelet's host machine"; "the volume is resolved at pod startup depending on
/// which PullPolicy value is provided"; "the volume gets re-resolved if the pod gets deleted and
/// recreated"; "the volume will be mounted read-only (ro) and non-executable files (noexec)";
/// "sub path mounts for containers are supported" (Volumes / image). Here: an image of two
/// layers, its whiteout honoured, read-only, and a subPath of it.
#[test]
fn an_image_volume_mounts_the_images_content_read_only() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let layout = inst.dir.join("tools-layout");
    two_layer_image(&layout);
    let out = inst.podshim(
        &[
            "image",
            "import",
            "--name",
            "tools:1",
            &layout.to_string_lossy(),
        ],
        T,
    );
    ok(&out);
    let u = uid(1);
    let script = "echo base=$(cat /tools/data/base.txt); echo top=$(cat /tools/data/top.txt); \
                  echo gone=$(ls /tools/data/gone.txt 2>/dev/null | wc -l); \
                  touch /tools/x 2>/dev/null; echo write=$?; echo sub=$(cat /sub/top.txt); \
                  echo opts=$(grep \" /tools \" /proc/mounts | cut -d\" \" -f4 | cut -d, -f1)";
    let mounts = "    volumeMounts:\n    - {name: tools, mountPath: /tools}\n    - {name: tools, mountPath: /sub, subPath: data}\n";
    let volumes =
        "  volumes:\n  - name: tools\n    image: {reference: 'tools:1', pullPolicy: Never}\n";
    let out = inst.run(
        &pod(
            &inst.name("img"),
            &u,
            "Never",
            &container("c", script, mounts),
            volumes,
        ),
        T,
    );
    ok(&out);
    let out = stdout(&out);
    assert_eq!(value(&out, "c", "base"), "base", "{out}");
    assert_eq!(value(&out, "c", "top"), "top", "{out}");
    assert_eq!(
        value(&out, "c", "gone"),
        "0",
        "the whiteout hides it:\n{out}"
    );
    assert_ne!(value(&out, "c", "write"), "0", "read-only:\n{out}");
    assert_eq!(value(&out, "c", "sub"), "top", "{out}");
    assert_eq!(value(&out, "c", "opts"), "ro", "{out}");
    inst.assert_clean(&[&u]);

    // Missing with pullPolicy Never: the kubelet's ErrImageNeverPull, nothing created.
    let u2 = uid(2);
    let volumes =
        "  volumes:\n  - name: tools\n    image: {reference: 'absent:9', pullPolicy: Never}\n";
    let out = inst.run(
        &pod(
            &inst.name("noimg"),
            &u2,
            "Never",
            &container(
                "c",
                "true",
                "    volumeMounts:\n    - {name: tools, mountPath: /tools}\n",
            ),
            volumes,
        ),
        T,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec.volumes[0].image.reference: ErrImageNeverPull"),
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[&u2]);
}

/// "The serviceAccountToken source ... injects a token for the service account into the Pod's
/// filesystem at the specified path"; "the audience field contains the intended audience of the
/// token"; "the expirationSeconds is the expected duration of validity of the service account
/// token" (Projected Volumes). podshim signs it with the instance's own key: no API server
/// validates it. The token lives in memory, as a Secret's files do.
#[test]
fn a_projected_service_account_token_is_signed_locally_with_the_pods_claims() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("tok");
    let script = "echo token=$(cat /var/run/secrets/tokens/vault-token); \
                  echo ns=$(cat /var/run/secrets/tokens/namespace); \
                  echo fs=$(stat -f -c %T /var/run/secrets/tokens)";
    let mounts = "    volumeMounts:\n    - {name: tokens, mountPath: /var/run/secrets/tokens}\n";
    let volumes = "  serviceAccountName: builder\n  volumes:\n  - name: tokens\n    projected:\n      sources:\n      - serviceAccountToken:\n          path: vault-token\n          audience: vault\n          expirationSeconds: 7200\n      - downwardAPI:\n          items:\n          - {path: namespace, fieldRef: {fieldPath: metadata.namespace}}\n";
    let out = inst.run(
        &pod(&name, &u, "Never", &container("c", script, mounts), volumes),
        T,
    );
    ok(&out);
    let out = stdout(&out);
    assert_eq!(value(&out, "c", "ns"), "default", "{out}");
    assert_eq!(value(&out, "c", "fs"), "tmpfs", "{out}");
    let token = value(&out, "c", "token");
    assert_eq!(token.split('.').count(), 3, "a JWS: {token}");
    let claims = podshim_kube::token::claims(&token).expect("a JWT payload");
    assert_eq!(claims["aud"], serde_json::json!(["vault"]));
    assert_eq!(claims["sub"], "system:serviceaccount:default:builder");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], name.as_str());
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], u.as_str());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 7200);
    // The instance's key: private; its public half published for local verification.
    let dir = inst.root.join("serviceaccount");
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(dir.join("key.p8")).unwrap().mode() & 0o777,
        0o600
    );
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("jwks.json")).unwrap()).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&base64_url(token.split('.').next().unwrap())).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    inst.assert_clean(&[&u]);
}

/// "The kubelet will proactively rotate the token if it is older than 80 percent of its total
/// TTL, or if the token is older than 24 hours" (Projected Volumes), and configMap-style
/// volumes are updated atomically through the `..data` symlink. Rotation is made to happen
/// every second with the test-only `PODSHIM_TEST_TOKEN_REFRESH_SECONDS`; a reader in the Pod
/// reading the token in a tight loop never sees a partial one, the token changes, and the new
/// one verifies with the instance key and expires later.
#[test]
fn a_projected_token_is_rotated_atomically_while_the_pod_runs() {
    let mut inst = Instance::new(SUITE);
    inst.env.push((
        podshim_kube::supervise::TEST_TOKEN_REFRESH_ENV.into(),
        "1".into(),
    ));
    inst.import_busybox();
    let u = uid(4);
    let name = inst.name("rot");
    // An ES256 JWS ends with an 86-character signature: anything else is a torn read.
    let script = "d=/var/run/secrets/tokens; echo first=$(cat $d/token); \
                  echo data1=$(readlink $d/..data); bad=0; n=0; \
                  end=$(( $(date +%s) + 5 )); while [ $(date +%s) -lt $end ]; do \
                  t=$(cat $d/token); s=${t##*.}; [ ${#s} -eq 86 ] || bad=$((bad+1)); \
                  n=$((n+1)); done; echo reads=$n; echo bad=$bad; echo last=$(cat $d/token); \
                  echo data2=$(readlink $d/..data); echo link=$(readlink $d/token)";
    let mounts = "    volumeMounts:\n    - {name: tokens, mountPath: /var/run/secrets/tokens}\n";
    let volumes = "  volumes:\n  - name: tokens\n    projected:\n      sources:\n      - serviceAccountToken:\n          path: token\n          expirationSeconds: 3600\n";
    let out = inst.run(
        &pod(&name, &u, "Never", &container("c", script, mounts), volumes),
        T,
    );
    ok(&out);
    let out = stdout(&out);
    assert_eq!(value(&out, "c", "bad"), "0", "{out}");
    let reads: u32 = value(&out, "c", "reads").parse().unwrap();
    assert!(reads > 20, "{out}");
    let (first, last) = (value(&out, "c", "first"), value(&out, "c", "last"));
    assert_ne!(first, last, "the token was rotated: {out}");
    assert_ne!(
        value(&out, "c", "data1"),
        value(&out, "c", "data2"),
        "{out}"
    );
    assert_eq!(value(&out, "c", "link"), "..data/token");
    let a = podshim_kube::token::verify(&inst.root, &first).expect("the first token verifies");
    let b = podshim_kube::token::verify(&inst.root, &last).expect("the rotated token verifies");
    assert!(b["exp"].as_i64() > a["exp"].as_i64(), "{a} {b}");
    assert_eq!(
        b["exp"].as_i64().unwrap() - b["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(a["kubernetes.io"], b["kubernetes.io"]);
    inst.assert_clean(&[&u]);
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}
