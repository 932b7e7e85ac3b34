//! The corpus (`tests/corpus/*.yaml`): Pod manifests as users copy them from the Kubernetes
//! documentation (multi-document files, block and flow YAML, comments, anchors and merge keys).
//! Each file says on its first line what should happen on this node: `# expect: runs`, or
//! `# expect: refused: <words of the refusal>` for a refusal Kubernetes would give too (a
//! profile missing on the node, no AppArmor, an unsafe sysctl, a kind `podshim run` does not
//! take).
//!
//! A manifest "runs" when podshim takes it through everything before creating anything: strict
//! decoding, the "not supported yet" gate, the API server's validation, scheduling on this node,
//! and the plan (the kubelet's admission: sysctls, AppArmor, seccomp profiles, hostPath types,
//! volumes, environment). Images are the environment's business, not podshim's: every image a
//! manifest names is the busybox test image here. The test prints a table and the share that
//! runs (the README quotes it), checks every expected refusal, and fails if the share drops below
//! what it was when the corpus was last measured.

use std::path::{Path, PathBuf};

use podshim_kube::manifest;
use podshim_kube::schedule::{self, node::Node};

/// The share of "expect: runs" manifests that ran when the corpus was last measured; a change
/// that makes fewer run fails this test.
const RUNS_AT_LEAST: usize = 35;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every `image:` value of a manifest (enough for the corpus: block and flow forms).
fn images(m: &manifest::Manifest) -> Vec<String> {
    let mut out: Vec<String> = m
        .pods
        .iter()
        .flat_map(|p| p.spec.containers.iter().chain(&p.spec.init_containers))
        .filter_map(|c| c.image.clone())
        .collect();
    // `image` volumes' images too.
    let volumes = m.pods.iter().flat_map(|p| &p.spec.volumes);
    out.extend(volumes.filter_map(|v| v.image.as_ref()?.reference.clone()));
    out.sort();
    out.dedup();
    out
}

/// What podshim says about one manifest: `Ok(())` when every Pod in it would run, else why not.
fn verdict(text: &str, store: &podshim_image::Store) -> Result<(), String> {
    let m = manifest::parse(text).map_err(|e| e.to_string())?;
    if m.pods.is_empty() {
        return Err("no Pod in it".into());
    }
    for image in images(&m) {
        store
            .import(Path::new(&busybox()), Some(&image))
            .map_err(|e| format!("(test setup) import as {image}: {e}"))?;
    }
    // The file's claims, provisioned as `podshim run` provisions them once its Pods are placed
    // (in the test's data root).
    if !m.persistent_volume_claims.is_empty() {
        let root = store.dir().parent().unwrap();
        let claims = podshim_kube::storage::Claims::open(root).map_err(|e| e.to_string())?;
        for c in &m.persistent_volume_claims {
            claims.provision(c).map_err(|e| e.to_string())?;
        }
    }
    let node = Node::this_host(&[], vec![]);
    let mut problems = Vec::new();
    for pod in &m.pods {
        let d = schedule::schedule(pod, &node, &[]);
        if !d.runs() {
            problems.push(d.describe(&node));
            continue;
        }
        if let Err(e) = podshim_kube::plan::plan(pod, &m, store) {
            problems.extend(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn busybox() -> PathBuf {
    podshim_tests::busybox_archive()
}

#[test]
fn the_share_of_documentation_manifests_that_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = podshim_image::Store::open(tmp.path()).unwrap();
    let (mut runs, mut want_runs, mut wrong) = (0, 0, Vec::new());
    let files = corpus();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    println!("{:<32} {:<8} what podshim says", "manifest", "result");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no '# expect:' first line", f.display()))
            .to_string();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let v = verdict(&text, &store);
        println!(
            "{:<32} {:<8} {}",
            name,
            if v.is_ok() { "runs" } else { "refused" },
            v.as_ref().err().map(String::as_str).unwrap_or("")
        );
        match expect.strip_prefix("refused: ") {
            None => {
                want_runs += 1;
                if v.is_ok() {
                    runs += 1;
                }
            }
            Some(words) => match &v {
                Err(e) if e.contains(words) => {}
                Err(e) => wrong.push(format!("{name}: refused, but not with {words:?}: {e}")),
                Ok(()) => wrong.push(format!("{name}: should be refused with {words:?}, runs")),
            },
        }
    }
    let total = files.len();
    let refused_right = total - want_runs - wrong.len();
    println!(
        "corpus: {runs} of {want_runs} manifests meant to run do ({:.0}%); {refused_right} of {} \
         refused as Kubernetes refuses them; {} of {total} handled as Kubernetes would ({:.0}%)",
        100.0 * runs as f64 / want_runs as f64,
        total - want_runs,
        runs + refused_right,
        100.0 * (runs + refused_right) as f64 / total as f64,
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(
        runs >= RUNS_AT_LEAST,
        "only {runs} of {want_runs} run (at least {RUNS_AT_LEAST} did)"
    );
}
