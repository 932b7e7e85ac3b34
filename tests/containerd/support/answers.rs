//! The reference runtime's answers, recorded in the repository per kind of host
//! (`tests/containerd/reference/runc/<host kind>/<test>.json`, the kind being the cgroup
//! version: what a container sees of its cgroups differs between them), and the comparison every
//! handler's answers go through: runc's must still match the recording (so a changed runc,
//! containerd or host shows up as a diff), and any other handler's must match runc's, value for
//! value.
//!
//! `PODSHIM_RECORD_ANSWERS=1` rewrites runc's files instead of comparing (after a deliberate
//! change of a test, or on a new kind of host; review the diff before committing it). On a kind
//! of host with no recording, runc's tests say so and keep only their own assertions; any other
//! handler's tests fail, having nothing to be compared with.

use std::path::PathBuf;

use serde_json::Value;

use super::handler::Handler;

/// `cgroup-v1` (v1 or hybrid, as here) or `cgroup-v2` (unified).
pub fn host_kind() -> &'static str {
    let unified = super::cleanup::cgroup_mounts()
        .iter()
        .any(|m| m == std::path::Path::new("/sys/fs/cgroup"))
        && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if unified {
        "cgroup-v2"
    } else {
        "cgroup-v1"
    }
}

fn reference(test: &str) -> PathBuf {
    super::workspace()
        .join("tests/containerd/reference/runc")
        .join(host_kind())
        .join(format!("{test}.json"))
}

/// Compare a handler's answers for `test` with runc's recorded ones (or record runc's).
pub fn check(handler: &Handler, test: &str, answers: &Value) {
    let path = reference(test);
    let pretty = serde_json::to_string_pretty(answers).unwrap() + "\n";
    // Also leave the answers next to the build for a look (and a diff) whatever the outcome.
    let out = super::workspace()
        .join("target/containerd-answers")
        .join(handler.name);
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join(format!("{test}.json")), &pretty);
    if handler.name == "runc" && std::env::var_os("PODSHIM_RECORD_ANSWERS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let recorded = match std::fs::read_to_string(&path) {
        Ok(r) => r,
        Err(e) if handler.name == "runc" => {
            eprintln!(
                "no recorded runc answers for this kind of host ({}: {e}): only the test's own \
                 assertions ran; record them with PODSHIM_RECORD_ANSWERS=1",
                path.display()
            );
            return;
        }
        Err(e) => panic!(
            "no recorded runc answers {} ({e}) to compare {} with: run runc's tests with \
             PODSHIM_RECORD_ANSWERS=1 first",
            path.display(),
            handler.name
        ),
    };
    let recorded: Value = serde_json::from_str(&recorded).unwrap();
    let diffs = diff("", &recorded, answers);
    assert!(
        diffs.is_empty(),
        "{} answers of {test} differ from runc's recorded ones ({}):\n{}\n(all answers: {})",
        handler.name,
        path.display(),
        diffs.join("\n"),
        out.join(format!("{test}.json")).display()
    );
}

/// Paths where two JSON values differ: `path: runc X, got Y`.
pub fn diff(path: &str, want: &Value, got: &Value) -> Vec<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let mut keys: Vec<&String> = w.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let p = format!("{path}/{k}");
                    diff(
                        &p,
                        w.get(k).unwrap_or(&Value::Null),
                        g.get(k).unwrap_or(&Value::Null),
                    )
                })
                .collect()
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .flat_map(|(i, (w, g))| diff(&format!("{path}/{i}"), w, g))
            .collect(),
        (w, g) if w == g => Vec::new(),
        (w, g) => vec![format!("{path}: runc {w}, got {g}")],
    }
}

/// The part of a start failure's message from runc's words on (`exec: "/x": stat /x: ...` or
/// `exec /x: ...`) to the end of its line, with what follows them (containerd's name of the
/// ttrpc code, e.g. `: unknown`): what the runtime said, without the prefixes of containerd,
/// ctr or the runtime's own name. The whole message when the words are not in it (so that a diff
/// shows it).
pub fn exec_words(message: &str) -> String {
    let message = message.trim();
    ["exec: \"", "exec /"]
        .iter()
        .filter_map(|w| message.find(w))
        .min()
        .map(|at| message[at..].lines().next().unwrap_or_default().to_string())
        .unwrap_or_else(|| message.to_string())
}
