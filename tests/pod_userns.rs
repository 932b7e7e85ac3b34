//! `hostUsers: false`, end to end: "a user namespace per Pod" (Kubernetes: User Namespaces).
//! The documentation says: "the UIDs/GIDs of the pod are mapped to a 64K range on the host
//! [...] a process running as root inside a container can run as a different (non-root) user
//! on the host"; each Pod gets a block of its own; files of the image and of the Pod's volumes
//! keep the owners the container expects. Each Pod runs in a private podshim instance and
//! leaves nothing behind: no mount, no ID block, no process of its IDs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use podshim_tests::*;

const SUITE: u32 = 35;
const T: Duration = Duration::from_secs(60);
/// The engine's host-wide claims of ID blocks (`podshim_engine::userns::CLAIMS_DIR`).
const CLAIMS: &str = "/run/podshim/userns-blocks";

fn userns_pod(name: &str, uid: &str) -> String {
    let app = container(
        "app",
        "touch /tmp/ready; exec sleep 300",
        "    volumeMounts: [{name: data, mountPath: /data}]\n    \
         readinessProbe:\n      exec: {command: [cat, /tmp/ready]}\n      periodSeconds: 1\n",
    );
    pod(
        name,
        uid,
        "Always",
        &app,
        "  hostUsers: false\n  volumes:\n  - {name: data, emptyDir: {}}\n",
    )
}

fn exec(inst: &Instance, pod: &str, script: &str) -> String {
    let out = inst.podshim(&["exec", pod, "--", "sh", "-c", script], T);
    ok(&out);
    stdout(&out)
}

/// The container's ID block: `0 BASE 65536` in its uid_map (and the same gid_map).
fn base_of(inst: &Instance, pod: &str) -> u32 {
    let map = exec(inst, pod, "cat /proc/self/uid_map; cat /proc/self/gid_map");
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "{map}");
    assert_eq!(lines[0], lines[1], "uid and gid maps differ: {map}");
    assert_eq!(lines[0][0], "0", "{map}");
    assert_eq!(lines[0][2], "65536", "{map}");
    let base: u32 = lines[0][1].parse().unwrap();
    assert!(base > 0 && base.is_multiple_of(65536), "{map}");
    base
}

/// The host PIDs of the processes in container `name` of Pod `uid`.
fn container_pids(inst: &Instance, uid: &str, name: &str) -> Vec<u32> {
    let dir = cgroup_dir("pids", &inst.container_cgroup(uid, name));
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// The real, effective, saved and filesystem UIDs of a host process.
fn host_uids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect()
}

/// Processes on the host running with a UID of the block at `base`.
fn processes_in_block(base: u32) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        if uid.is_some_and(|u| (base..base + 65536).contains(&u)) {
            found.push(format!(
                "{} {}",
                e.file_name().to_string_lossy(),
                status.lines().next().unwrap_or("")
            ));
        }
    }
    found
}

fn claim_of(base: u32) -> PathBuf {
    Path::new(CLAIMS).join((base / 65536).to_string())
}

/// Nothing of the block at `base` is left: no claim, no process of its IDs.
fn assert_block_released(base: u32) {
    assert!(
        !claim_of(base).exists(),
        "claim {} left",
        claim_of(base).display()
    );
    let procs = processes_in_block(base);
    assert!(
        procs.is_empty(),
        "processes of block {base} left: {procs:?}"
    );
}

fn ready(v: &serde_json::Value) -> bool {
    v["status"]["containerStatuses"][0]["ready"] == true
}

/// The modes of the instance's state root and its `pods` directory: 0711 (others may pass
/// through) while a Pod with its own user namespace is there, 0700 otherwise.
fn state_modes(inst: &Instance) -> (u32, u32) {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    (mode(&inst.state), mode(&inst.state.join("pods")))
}

const OPEN: (u32, u32) = (0o711, 0o711);
const CLOSED: (u32, u32) = (0o700, 0o700);

#[test]
fn a_pod_of_its_own_user_namespace_maps_root_to_its_block() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (u1, u2) = (uid(1), uid(2));
    let (p1, p2) = (inst.name("userns-a"), inst.name("userns-b"));
    ok(&inst.detach(&userns_pod(&p1, &u1)));
    ok(&inst.detach(&userns_pod(&p2, &u2)));
    // The readiness probe (an exec in the container's namespaces) passes.
    inst.wait_for(&p1, T, "ready", ready);
    inst.wait_for(&p2, T, "ready", ready);

    // "0 BASE 65536" inside, two Pods' blocks disjoint, each claimed by its Pod's journal.
    let (b1, b2) = (base_of(&inst, &p1), base_of(&inst, &p2));
    assert_eq!(state_modes(&inst), OPEN);
    assert!(b1.abs_diff(b2) >= 65536, "blocks {b1} and {b2} overlap");
    for (b, p) in [(b1, &p1), (b2, &p2)] {
        let owner = std::fs::read_to_string(claim_of(b)).unwrap();
        assert!(
            owner.ends_with(&format!("default_{p}/journal.json")),
            "{owner}"
        );
    }

    // Root in the container is BASE on the host (every UID of the process).
    let pids = container_pids(&inst, &u1, "app");
    assert!(!pids.is_empty(), "no process in the container's cgroup");
    for pid in &pids {
        assert_eq!(host_uids(*pid), vec![b1; 4], "process {pid}");
    }
    // exec runs as root inside too, in the same namespace.
    assert_eq!(
        exec(&inst, &p1, "id -u; id -g")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "0"]
    );

    // The image's root-owned files are root's inside; the writable layer is the Pod's root's.
    assert_eq!(
        exec(&inst, &p1, "stat -c %u:%g /bin/busybox /etc/passwd /").trim(),
        "0:0\n0:0\n0:0"
    );
    assert_eq!(
        exec(&inst, &p1, "touch /made && stat -c %u /made").trim(),
        "0"
    );

    // A file root writes into an emptyDir is BASE's on the host.
    exec(&inst, &p1, "echo hi > /data/by-root");
    let host_file = inst
        .state
        .join("pods")
        .join(format!("default_{p1}"))
        .join("volumes/data/by-root");
    let meta = std::fs::metadata(&host_file).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (b1, b1),
        "{}",
        host_file.display()
    );
    assert_eq!(exec(&inst, &p1, "stat -c %u /data/by-root").trim(), "0");

    // rm: nothing of the first Pod is left.
    ok(&inst.podshim(&["rm", "-f", &p1], T));
    assert_block_released(b1);
    // The second Pod still needs to pass through the state root.
    assert_eq!(state_modes(&inst), OPEN);
    assert_eq!(exec(&inst, &p2, "echo still").trim(), "still");
    assert!(
        inst.leaks(&[&u1])
            .iter()
            .all(|l| !l.contains(&u1) && !l.contains(&p1)),
        "{:?}",
        inst.leaks(&[&u1])
    );

    // A SIGKILLed supervisor, then gc: nothing of the second Pod is left either.
    let sup = inst
        .supervisor_pid(&p2)
        .expect("supervisor of the second Pod");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ok(&inst.podshim(&["gc"], T));
    // The container's processes die with the Pod's teardown (asynchronously after SIGKILL).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !processes_in_block(b2).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_block_released(b2);
    // gc released the last claim under this state root: closed again.
    assert_eq!(state_modes(&inst), CLOSED);
    inst.assert_clean(&[&u1, &u2]);
}

/// The state root is opened (0711) only while a Pod with its own user namespace is there:
/// closed again (0700) after `stop` of the last one (its teardown released its ID block), and
/// when one Pod is removed while another is created at the same time, the new one's claim and
/// the old one's release take the claims' lock in turn, so the root is never left closed on a
/// running Pod.
#[test]
fn the_state_root_is_closed_again_after_the_last_user_namespace_pod() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(9);
    let first = inst.name("userns-first");
    ok(&inst.detach(&userns_pod(&first, &u)));
    inst.wait_for(&first, T, "ready", ready);
    assert_eq!(state_modes(&inst), OPEN);
    ok(&inst.podshim(&["stop", "--grace-period", "1", &first], T));
    assert_eq!(state_modes(&inst), CLOSED);
    ok(&inst.podshim(&["rm", &first], T));
    assert_eq!(state_modes(&inst), CLOSED);

    // Removing one while creating the next, twice.
    let mut uids = vec![u.clone()];
    let mut running = (inst.name("userns-r0"), uid(10));
    ok(&inst.detach(&userns_pod(&running.0, &running.1)));
    uids.push(running.1.clone());
    for round in 1..=2 {
        let next = (inst.name(&format!("userns-r{round}")), uid(10 + round));
        uids.push(next.1.clone());
        let rm = inst
            .command()
            .args(["rm", "-f", &running.0])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        ok(&inst.detach(&userns_pod(&next.0, &next.1)));
        ok(&wait_output(rm, T));
        inst.wait_for(&next.0, T, "ready", ready);
        assert_eq!(state_modes(&inst), OPEN, "round {round}");
        assert_eq!(exec(&inst, &next.0, "echo up").trim(), "up");
        running = next;
    }
    ok(&inst.podshim(&["rm", "-f", &running.0], T));
    assert_eq!(state_modes(&inst), CLOSED);
    let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
    inst.assert_clean(&uids);
}

/// "Kubernetes v1.33+ [...] allows any volume type with user namespaces, using ID-mapped
/// mounts" (User Namespaces): a hostPath directory and file are the host's, seen through the
/// Pod's ID mapping. The host's root-owned file is root's inside and writable by the container's
/// root; what that root makes is host root's (ID 0 on disk, not the Pod's block). The host's
/// files stay when the Pod is gone, and no mount is left.
#[test]
fn host_path_volumes_are_id_mapped_with_host_users_false() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let host = inst.dir.join("host-dir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("by-host-root"), "host\n").unwrap();
    let single = inst.dir.join("host-file");
    std::fs::write(&single, "one\n").unwrap();
    let u = uid(3);
    let script = "echo map=$(cat /proc/self/uid_map); \
                  echo owner=$(stat -c %u:%g /h/by-host-root) content=$(cat /h/by-host-root); \
                  echo more >> /h/by-host-root && echo new > /h/by-pod-root && \
                  echo made=$(stat -c %u:%g /h/by-pod-root); \
                  echo file=$(stat -c %u /f) $(cat /f); echo two >> /f";
    let c = container(
        "c",
        script,
        "    volumeMounts: [{name: h, mountPath: /h}, {name: f, mountPath: /f}]\n",
    );
    let volumes = format!(
        "  hostUsers: false\n  volumes:\n  - {{name: h, hostPath: {{path: {}, type: Directory}}}}\n  \
         - {{name: f, hostPath: {{path: {}, type: File}}}}\n",
        host.display(),
        single.display()
    );
    let out = inst.run(&pod(&inst.name("userns-hp"), &u, "Never", &c, &volumes), T);
    ok(&out);
    let lines = lines_of(&stdout(&out), "c");
    let field = |tag: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{tag}=")))
            .unwrap_or_else(|| panic!("no {tag}= in {lines:?}"))
            .to_string()
    };
    let map: Vec<String> = field("map").split_whitespace().map(String::from).collect();
    assert_eq!(map[0], "0", "{map:?}");
    assert_ne!(
        map[1], "0",
        "root is host root: no user namespace ({map:?})"
    );
    assert_eq!(field("owner"), "0:0 content=host");
    assert_eq!(field("made"), "0:0");
    assert_eq!(field("file"), "0 one");
    // On the host: what the container's root wrote is root's; everything is still there.
    let made = std::fs::metadata(host.join("by-pod-root")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
    assert_eq!(
        std::fs::read_to_string(host.join("by-pod-root")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("by-host-root")).unwrap(),
        "host\nmore\n"
    );
    assert_eq!(std::fs::read_to_string(&single).unwrap(), "one\ntwo\n");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/idmapped/"), "{mounts}");
    inst.assert_clean(&[&u]);
}

/// A claim's data with `hostUsers: false`: written by the first Pod's root, read by a second
/// Pod of another block, and root's (ID 0) in the claim's directory on the host, so a Pod with
/// or without a user namespace reads it as written.
#[test]
fn a_claims_data_is_kept_across_user_namespace_pods() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  \
                 accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Mi\n";
    let file = inst.dir.join("claim.yaml");
    std::fs::write(&file, claim).unwrap();
    ok(&inst.podshim(&["apply", "-f", &file.to_string_lossy()], T));
    let volume = "  hostUsers: false\n  volumes:\n  - name: data\n    \
                  persistentVolumeClaim: {claimName: data}\n";
    let mount = "    volumeMounts:\n    - {name: data, mountPath: /data}\n";
    let (u1, u2) = (uid(4), uid(5));
    let writer = container(
        "c",
        "echo kept > /data/file; echo map=$(cat /proc/self/uid_map)",
        mount,
    );
    let out = inst.run(&pod(&inst.name("pvc-w"), &u1, "Never", &writer, volume), T);
    ok(&out);
    let reader = container(
        "c",
        "echo got=$(cat /data/file) $(stat -c %u:%g /data/file); echo map=$(cat /proc/self/uid_map)",
        mount,
    );
    let out = inst.run(&pod(&inst.name("pvc-r"), &u2, "Never", &reader, volume), T);
    ok(&out);
    let lines = lines_of(&stdout(&out), "c");
    assert!(lines.iter().any(|l| l == "got=kept 0:0"), "{lines:?}");
    // The second Pod's root is not host root: `0 BASE 65536`, BASE not 0.
    let map = lines
        .iter()
        .find_map(|l| l.strip_prefix("map="))
        .map(|m| m.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        map.len() == 3 && map[0] == "0" && map[1] != "0",
        "{lines:?}"
    );
    // `get pvc -o wide`'s last column: the claim's directory, where the file is host root's.
    let out = inst.podshim(&["get", "pvc", "data", "-o", "wide"], T);
    ok(&out);
    let text = stdout(&out);
    let dir = PathBuf::from(
        text.lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("{text}")),
    );
    let meta = std::fs::metadata(dir.join("file")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", dir.display());
    ok(&inst.podshim(&["delete", "-f", &file.to_string_lossy()], T));
    inst.assert_clean(&[&u1, &u2]);
}

/// An `image` volume with `hostUsers: false`: the image's root-owned files are root's inside
/// (its layers are read through an ID-mapped bind), and the volume stays read-only. The image
/// has two layers (busybox plus one more), so the volume is an overlay of ID-mapped layers.
#[test]
fn image_volumes_are_id_mapped_with_host_users_false() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    inst.import_derived_busybox("layered:1", "echo extra > bundle/rootfs/extra");
    let u = uid(6);
    let c = container(
        "c",
        "echo map=$(cat /proc/self/uid_map); \
         echo owners=$(stat -c %u:%g /i/bin/busybox /i/etc/passwd /i/extra) $(cat /i/extra); \
         touch /i/x 2>/dev/null; echo write=$?",
        "    volumeMounts: [{name: i, mountPath: /i}]\n",
    );
    let yaml = pod(
        &inst.name("userns-iv"),
        &u,
        "Never",
        &c,
        "  hostUsers: false\n  volumes:\n  - {name: i, image: {reference: layered:1}}\n",
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    let lines = lines_of(&stdout(&out), "c");
    let map = lines
        .iter()
        .find_map(|l| l.strip_prefix("map="))
        .map(|m| m.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        map.len() == 3 && map[0] == "0" && map[1] != "0",
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "owners=0:0 0:0 0:0 extra"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("write=") && l != "write=0"),
        "{lines:?}"
    );
    inst.assert_clean(&[&u]);
}
