//! End-to-end tests of pulls from real registries (Debian's `docker-registry` on 127.0.0.1,
//! see setup.rs): by tag and by digest, a multi-platform index, gzip and zstd layers, whiteouts
//! and opaque directories, corrupted blobs, authentication (basic here, bearer tokens in
//! token.rs), missing images, concurrent pulls, imagePullPolicy, and image rm/prune. Pods are
//! run from the pulled images; every test checks that its instance left nothing behind.

mod setup;
mod token;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use podshim_tests::base64_encode;
use podshim_tests::{lines_of, ok, stderr, stdout, uid, wait_output, Instance};
use serde_json::Value;
use setup::{authfile, registries, registry_blob, PASSWORD, USER};

const SUITE: u32 = 9;
const T: Duration = Duration::from_secs(90);

/// A one-container Pod running `script` in `image` (`extra`: more YAML lines for the container,
/// `spec_extra`: for the spec, `docs`: more documents).
fn pod_yaml(
    name: &str,
    uid: &str,
    image: &str,
    script: &str,
    extra: &str,
    spec_extra: &str,
) -> String {
    let script = script.replace('\'', "''");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  uid: {uid}\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 1\n{spec_extra}  containers:\n  - name: c\n    image: {image}\n    \
         command: [sh, -c, '{script}']\n{extra}"
    )
}

fn podshim(inst: &Instance, args: &[&str]) -> Output {
    wait_output(
        inst.command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        T,
    )
}

fn ls(inst: &Instance) -> Vec<Value> {
    let out = podshim(inst, &["image", "ls", "-o", "json"]);
    ok(&out);
    serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
                .count()
        })
        .unwrap_or(0)
}

fn blobs(inst: &Instance) -> usize {
    count(&inst.root.join("images/blobs/sha256"))
}

fn layers(inst: &Instance) -> usize {
    count(&inst.root.join("images/layers/sha256"))
}

fn failed_with(out: &Output, want: &[&str]) {
    assert!(!out.status.success(), "expected a failure\n{}", stdout(out));
    let e = stderr(out);
    for w in want {
        assert!(e.contains(w), "stderr should contain {w:?}:\n{e}");
    }
}

#[test]
fn pull_by_tag_and_by_digest_then_run() {
    let r = registries();
    let inst = Instance::new(SUITE);
    let tagged = format!("{}/busybox:1.35", r.open);
    let out = podshim(&inst, &["image", "pull", &tagged]);
    ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("{tagged} {}", r.busybox_digest)
    );
    assert!(
        stderr(&out).is_empty(),
        "quiet off a terminal: {}",
        stderr(&out)
    );
    let images = ls(&inst);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["name"], tagged.as_str());
    assert_eq!(images[0]["digest"], r.busybox_digest.as_str());
    assert!(images[0]["size"].as_u64().unwrap() > 500_000);
    assert!(images[0]["created"].is_string());
    let (b, l) = (blobs(&inst), layers(&inst));

    // A Pod naming the image by digest pulls it (digest references default to IfNotPresent,
    // and that name is not in the store) and runs: podshim was single-threaded again.
    let digested = format!("{}/busybox@{}", r.open, r.busybox_digest);
    let u = uid(1);
    let out = inst.run(
        &pod_yaml(
            &inst.name("digest"),
            &u,
            &digested,
            "echo ran-from-digest",
            "",
            "",
        ),
        T,
    );
    ok(&out);
    assert_eq!(lines_of(&stdout(&out), "c"), ["ran-from-digest"]);
    assert_eq!(
        (blobs(&inst), layers(&inst)),
        (b, l),
        "one copy of the content"
    );
    // Pulled by digest explicitly, the image gets that name, still one copy.
    let out = podshim(&inst, &["image", "pull", &digested]);
    ok(&out);
    let names: Vec<String> = ls(&inst)
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [tagged.clone(), digested.clone()]);
    assert_eq!(
        (blobs(&inst), layers(&inst)),
        (b, l),
        "one copy of the content"
    );

    // A Pod by tag, pulled by the Pod itself in a fresh instance; through `localhost`, so the
    // pull resolves a host name on the runtime's blocking pool, which must be gone before the
    // container is created.
    let inst2 = Instance::new(SUITE);
    let u2 = uid(2);
    let by_name = tagged.replace("127.0.0.1", "localhost");
    let out = inst2.run(
        &pod_yaml(
            &inst2.name("tag"),
            &u2,
            &by_name,
            "echo ran-from-tag",
            "",
            "",
        ),
        T,
    );
    ok(&out);
    assert_eq!(lines_of(&stdout(&out), "c"), ["ran-from-tag"]);

    // On a terminal, the pull shows its layers and a total.
    let inst3 = Instance::new(SUITE);
    let cmd = format!(
        "{} --root {} image pull {tagged}",
        podshim_tests::podshim_bin().display(),
        inst3.root.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    ok(&out);
    let shown = stdout(&out);
    assert!(
        shown.contains("pulling ") && shown.contains("total") && shown.contains("verified"),
        "{shown}"
    );
    inst.assert_clean(&[&u]);
    inst2.assert_clean(&[&u2]);
    inst3.assert_clean(&[]);
}

#[test]
fn whiteouts_and_opaque_dirs_take_effect_gzip_and_zstd() {
    let r = registries();
    let inst = Instance::new(SUITE);
    let script = "cat /data/keep; echo; cat /data/replaced; echo; ls /opq; \
                  for f in /data/gone /data/sub /opq/a /opq/b; do [ -e $f ] && echo LEAKED $f; done; echo end";
    for (n, tag) in [(3, "1"), (4, "zstd")] {
        let image = format!("{}/layered:{tag}", r.open);
        let u = uid(n);
        let out = inst.run(
            &pod_yaml(&inst.name(&format!("wh{n}")), &u, &image, script, "", ""),
            T,
        );
        ok(&out);
        let suffix = if tag == "1" { "gzip" } else { "zstd" };
        assert_eq!(
            lines_of(&stdout(&out), "c"),
            [
                "kept".to_string(),
                format!("new-{suffix}"),
                "c".into(),
                "end".into()
            ],
            "{image}"
        );
        inst.assert_clean(&[&u]);
    }
    // The zstd variant really has zstd layers.
    let out = podshim(
        &inst,
        &["image", "inspect", &format!("{}/layered:zstd", r.open)],
    );
    ok(&out);
    let inspected: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let media_types: Vec<&str> = inspected["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(
        media_types.iter().any(|m| m.ends_with("+zstd")),
        "{media_types:?}"
    );
    assert_eq!(
        inspected["layers"].as_array().unwrap().len(),
        media_types.len()
    );
}

#[test]
fn multi_platform_index_resolves_to_this_host() {
    let r = registries();
    let inst = Instance::new(SUITE);
    let image = format!("{}/multi:1", r.open);
    let u = uid(5);
    let out = inst.run(
        &pod_yaml(
            &inst.name("multi"),
            &u,
            &image,
            "cat /arch; echo; echo $ARCH",
            "",
            "",
        ),
        T,
    );
    ok(&out);
    assert_eq!(lines_of(&stdout(&out), "c"), ["amd64", "amd64"]);
    let out = podshim(&inst, &["image", "inspect", &image]);
    ok(&out);
    let inspected: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(inspected["digest"], r.multi_amd64_digest.as_str());
    assert_eq!(inspected["index_digest"], r.multi_index_digest.as_str());
    // By the index's digest: the same manifest, and resolvable by that digest.
    let by_index = format!("{}/multi@{}", r.open, r.multi_index_digest);
    let out = podshim(&inst, &["image", "pull", &by_index]);
    ok(&out);
    assert!(
        stdout(&out).contains(&r.multi_amd64_digest),
        "{}",
        stdout(&out)
    );
    let out = podshim(&inst, &["image", "inspect", &by_index]);
    ok(&out);
    inst.assert_clean(&[&u]);
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_is_stored() {
    let r = registries();
    let inst = Instance::new(SUITE);
    let blob = registry_blob(&r.open_storage, &r.tamper_layer);
    let mut bytes = fs::read(&blob).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let image = format!("{}/tamper:1", r.open);
    let out = podshim(&inst, &["image", "pull", &image]);
    failed_with(&out, &[&r.tamper_layer, "hashes to"]);
    assert!(ls(&inst).is_empty());
    assert_eq!(
        (blobs(&inst), layers(&inst)),
        (0, 0),
        "nothing of the failed pull is kept"
    );
    assert_eq!(count(&inst.root.join("images/tmp")), 0);
    // A Pod of that image fails with ErrImagePull before anything is created.
    let u = uid(6);
    let out = inst.run(
        &pod_yaml(&inst.name("tamper"), &u, &image, "echo never", "", ""),
        T,
    );
    failed_with(&out, &["ErrImagePull", "hashes to"]);
    assert!(lines_of(&stdout(&out), "c").is_empty());
    inst.assert_clean(&[&u]);
}

#[test]
fn authentication_and_missing_images() {
    let r = registries();
    let mut inst = Instance::new(SUITE);
    let image = format!("{}/private/busybox:1.35", r.auth);
    let out = podshim(&inst, &["image", "pull", &image]);
    failed_with(&out, &["requires authentication", &r.auth]);
    let wrong = authfile(&inst.dir, &r.auth, USER, "wrong");
    let out = podshim(
        &inst,
        &[
            "--authfile",
            wrong.to_str().unwrap(),
            "image",
            "pull",
            &image,
        ],
    );
    failed_with(&out, &["refused the credentials", wrong.to_str().unwrap()]);
    assert!(ls(&inst).is_empty());
    let good = authfile(&inst.dir, &r.auth, USER, PASSWORD);
    let out = podshim(
        &inst,
        &[
            "--authfile",
            good.to_str().unwrap(),
            "image",
            "pull",
            &image,
        ],
    );
    ok(&out);

    // A Pod with a kubernetes.io/dockerconfigjson pull secret in the same file, in a fresh
    // instance without any auth file.
    let inst2 = Instance::new(SUITE);
    let config = serde_json::json!({"auths": {r.auth.as_str(): {
        "auth": base64_encode(format!("{USER}:{PASSWORD}").as_bytes())}}})
    .to_string();
    let secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\n\
         data:\n  .dockerconfigjson: {}\n",
        base64_encode(config.as_bytes())
    );
    let u = uid(7);
    let yaml = pod_yaml(
        &inst2.name("secret"),
        &u,
        &image,
        "echo pulled-with-secret",
        "",
        "  imagePullSecrets:\n  - name: regcred\n",
    ) + &secret;
    let out = inst2.run(&yaml, T);
    ok(&out);
    assert_eq!(lines_of(&stdout(&out), "c"), ["pulled-with-secret"]);
    // Without the secret: ErrImagePull with the registry's reason, nothing created.
    let inst3 = Instance::new(SUITE);
    let u3 = uid(8);
    let yaml = pod_yaml(
        &inst3.name("nosecret"),
        &u3,
        &image,
        "echo never",
        "",
        "  imagePullSecrets:\n  - name: absent\n",
    );
    let out = inst3.run(&yaml, T);
    failed_with(
        &out,
        &[
            "ErrImagePull",
            "requires authentication",
            "secret \"absent\" is not in the manifest",
        ],
    );
    inst3.assert_clean(&[&u3]);

    // $REGISTRY_AUTH_FILE is read too.
    inst.env
        .push(("REGISTRY_AUTH_FILE".into(), good.display().to_string()));
    let out = podshim(&inst, &["image", "pull", &image]);
    ok(&out);

    // Missing tag, missing repository, unreachable registry.
    let out = podshim(
        &inst,
        &["image", "pull", &format!("{}/busybox:nope", r.open)],
    );
    failed_with(&out, &["manifest unknown"]);
    let out = podshim(
        &inst,
        &["image", "pull", &format!("{}/nothing/here:1", r.open)],
    );
    failed_with(&out, &["cannot pull", "unknown"]);
    let u4 = uid(9);
    let out = inst.run(
        &pod_yaml(
            &inst.name("missing"),
            &u4,
            &format!("{}/busybox:nope", r.open),
            "echo never",
            "",
            "",
        ),
        T,
    );
    failed_with(
        &out,
        &["spec.containers[0].image: ErrImagePull", "manifest unknown"],
    );
    inst.assert_clean(&[&u4]);
    inst2.assert_clean(&[&u]);
}

#[test]
fn concurrent_pulls_both_succeed_with_one_copy() {
    let r = registries();
    let inst = Instance::new(SUITE);
    let image = format!("{}/layered:1", r.open);
    let spawn = || {
        inst.command()
            .args(["image", "pull", &image])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (wait_output(a, T), wait_output(b, T));
    ok(&a);
    ok(&b);
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(ls(&inst).len(), 1);
    // manifest + config + layers, each once; each layer unpacked once.
    assert_eq!(blobs(&inst), r.layered_blobs + 1);
    assert_eq!(layers(&inst), r.layered_layers);
    assert_eq!(count(&inst.root.join("images/tmp")), 0);
    inst.assert_clean(&[]);
}

#[test]
fn pull_policies() {
    let inst = Instance::new(SUITE);
    // Names on a registry that does not exist (port 1 refuses connections): whether podshim
    // contacts it shows whether it pulls.
    for name in ["127.0.0.1:1/bb:1.35", "127.0.0.1:1/bb:latest"] {
        let out = podshim(
            &inst,
            &[
                "image",
                "import",
                "--name",
                name,
                podshim_tests::busybox_archive().to_str().unwrap(),
            ],
        );
        ok(&out);
    }
    let run = |n: u32, image: &str, policy: Option<&str>| {
        let u = uid(n);
        let extra = policy
            .map(|p| format!("    imagePullPolicy: {p}\n"))
            .unwrap_or_default();
        let out = inst.run(
            &pod_yaml(
                &inst.name(&format!("p{n}")),
                &u,
                image,
                "echo ran",
                &extra,
                "",
            ),
            T,
        );
        inst.assert_clean(&[&u]);
        out
    };
    // IfNotPresent (the default for a tag other than latest) uses the stored image.
    ok(&run(10, "127.0.0.1:1/bb:1.35", None));
    ok(&run(11, "127.0.0.1:1/bb:1.35", Some("IfNotPresent")));
    ok(&run(12, "127.0.0.1:1/bb:1.35", Some("Never")));
    // Always (the default for :latest) pulls, and fails here.
    failed_with(
        &run(13, "127.0.0.1:1/bb:1.35", Some("Always")),
        &["ErrImagePull", "Connection refused"],
    );
    failed_with(
        &run(14, "127.0.0.1:1/bb:latest", None),
        &["ErrImagePull", "Connection refused"],
    );
    // Never with a missing image: ErrImageNeverPull, nothing contacted.
    failed_with(
        &run(15, "127.0.0.1:1/other:1", Some("Never")),
        &["ErrImageNeverPull"],
    );
    // IfNotPresent with a missing image pulls.
    failed_with(
        &run(16, "127.0.0.1:1/other:1", None),
        &["ErrImagePull", "Connection refused"],
    );
}

#[test]
fn rm_and_prune_keep_what_a_running_pod_uses() {
    let r = registries();
    let inst = Instance::new(SUITE);
    let busybox = format!("{}/busybox:1.35", r.open);
    let layered = format!("{}/layered:1", r.open);
    ok(&podshim(&inst, &["image", "pull", &busybox]));
    ok(&podshim(&inst, &["image", "pull", &layered]));
    let both = layers(&inst);
    assert_eq!(both, r.layered_layers, "the busybox layer is shared");
    // A Pod runs on layered:1 while it is removed and the store pruned.
    let u = uid(20);
    let mut child = inst.spawn(&pod_yaml(
        &inst.name("busy"),
        &u,
        &layered,
        "echo started; sleep 30",
        "    imagePullPolicy: Never\n",
        "",
    ));
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.contains("started"), "{line}");
    let out = podshim(&inst, &["image", "rm", &layered]);
    ok(&out);
    assert!(
        stdout(&out).contains(&format!("removed {layered}")),
        "{}",
        stdout(&out)
    );
    ok(&podshim(&inst, &["image", "prune"]));
    assert_eq!(layers(&inst), both, "layers of a running Pod are kept");
    assert_eq!(ls(&inst).len(), 1);
    podshim_tests::term(&child);
    let out = wait_output(child, T);
    assert!(out.status.code().is_some(), "{out:?}");
    inst.assert_clean(&[&u]);
    let out = podshim(&inst, &["image", "prune"]);
    ok(&out);
    assert!(stdout(&out).contains("freed"), "{}", stdout(&out));
    assert_eq!(layers(&inst), 1, "only busybox's layer is left");
    assert_eq!(blobs(&inst), 3, "busybox's manifest, config and layer");
    // rm of what is not there is an error; removing the last image empties the store.
    failed_with(
        &podshim(&inst, &["image", "rm", &layered]),
        &["not in the image store"],
    );
    ok(&podshim(&inst, &["image", "rm", &busybox]));
    assert_eq!((blobs(&inst), layers(&inst)), (0, 0));
}
