//! End-to-end tests of `podshim run`: real Pods (pause, netns, veth, bridge, emptyDirs,
//! libcontainer containers) from the busybox test image, each in a private podshim instance,
//! each checking afterwards that nothing of the instance is left.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use podshim_tests::{
    container, ipv4_of, lines_of, ok, pod, stderr, stdout, uid, wait_output, Instance,
};

const SUITE: u32 = 1;
const T: Duration = Duration::from_secs(60);

#[test]
fn two_containers_talk_over_localhost() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let yaml = pod(
        &inst.name("talk"),
        &u,
        "Never",
        &(container("server", "echo hello-from-server | nc -l -p 8080; echo served", "")
            + &container(
                "client",
                "for i in $(seq 100); do if nc 127.0.0.1 8080 </dev/null; then exit 0; fi; sleep 0.1; done; exit 1",
                "",
            )),
        "",
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    let s = stdout(&out);
    assert!(
        lines_of(&s, "client").contains(&"hello-from-server".to_string()),
        "{s}"
    );
    assert!(
        lines_of(&s, "server").contains(&"served".to_string()),
        "{s}"
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn empty_dirs_are_shared_on_disk_and_in_memory() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let writer = container(
        "writer",
        "echo disk-data > /disk/f && echo mem-data > /mem/f && echo written",
        "    volumeMounts:\n    - {name: disk, mountPath: /disk}\n    - {name: mem, mountPath: /mem}\n",
    );
    let reader = container(
        "reader",
        "for i in $(seq 100); do [ -f /disk/f ] && [ -f /mem/f ] && break; sleep 0.1; done; \
         cat /disk/f /mem/f; grep \" /mem \" /proc/mounts; \
         if touch /disk/x 2>/dev/null; then echo disk-writable; else echo disk-read-only; fi",
        "    volumeMounts:\n    - {name: disk, mountPath: /disk, readOnly: true}\n    - {name: mem, mountPath: /mem}\n",
    );
    let volumes = "  volumes:\n  - name: disk\n    emptyDir: {}\n  - name: mem\n    emptyDir: {medium: Memory, sizeLimit: 8Mi}\n";
    let out = inst.run(
        &pod(
            &inst.name("share"),
            &u,
            "Never",
            &(writer + &reader),
            volumes,
        ),
        T,
    );
    ok(&out);
    let r = lines_of(&stdout(&out), "reader");
    assert!(
        r.contains(&"disk-data".to_string()) && r.contains(&"mem-data".to_string()),
        "{r:?}"
    );
    let mem = r
        .iter()
        .find(|l| l.contains(" /mem "))
        .unwrap_or_else(|| panic!("no /mem mount: {r:?}"));
    assert!(
        mem.starts_with("tmpfs ") && mem.contains("size=8192k"),
        "{mem}"
    );
    assert!(r.contains(&"disk-read-only".to_string()), "{r:?}");
    inst.assert_clean(&[&u]);
}

#[test]
fn containers_share_the_pod_ip_and_hostname() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("same");
    let script = "ip -o -4 addr show dev eth0; echo host=$(hostname); grep -v ^# /etc/hosts | grep $(hostname)";
    let yaml = pod(
        &name,
        &u,
        "Never",
        &(container("a", script, "") + &container("b", script, "")),
        "",
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    let s = stdout(&out);
    let (a, b) = (lines_of(&s, "a"), lines_of(&s, "b"));
    let ip_a = ipv4_of(&a).unwrap_or_else(|| panic!("no IP in {a:?}"));
    assert_eq!(Some(ip_a.clone()), ipv4_of(&b), "{s}");
    assert!(
        ip_a.starts_with(&format!("{}.", inst.prefix)),
        "{ip_a} not in {}",
        inst.subnet
    );
    assert_ne!(
        ip_a,
        format!("{}.1", inst.prefix),
        "the gateway address is the bridge's"
    );
    for l in [&a, &b] {
        assert!(l.contains(&format!("host={name}")), "{l:?}");
        assert!(
            l.iter().any(|x| x.starts_with(&ip_a) && x.ends_with(&name)),
            "/etc/hosts: {l:?}"
        );
    }
    inst.assert_clean(&[&u]);
}

#[test]
fn two_pods_get_different_ips_and_reach_each_other() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (ua, ub) = (uid(4), uid(5));
    let a = pod(
        &inst.name("pod-a"),
        &ua,
        "Never",
        &container(
            "srv",
            "ip -o -4 addr show dev eth0; echo pong | nc -l -p 9000; echo done",
            "",
        ),
        "",
    );
    let mut child = inst.spawn(&a);
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let mut ip_a = None;
    while ip_a.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("pod A printed its IP");
        ip_a = ipv4_of(&lines_of(&line, "srv"));
    }
    let ip_a = ip_a.unwrap();
    let b = pod(
        &inst.name("pod-b"),
        &ub,
        "Never",
        &container(
            "cli",
            &format!("ip -o -4 addr show dev eth0; for i in $(seq 100); do if nc {ip_a} 9000 </dev/null; then exit 0; fi; sleep 0.1; done; exit 1"),
            "",
        ),
        "",
    );
    let out_b = inst.run(&b, T);
    ok(&out_b);
    let lb = lines_of(&stdout(&out_b), "cli");
    let ip_b = ipv4_of(&lb).expect("pod B's IP");
    assert_ne!(ip_a, ip_b);
    assert!(lb.contains(&"pong".to_string()), "{lb:?}");
    let status = wait_output(child, T).status;
    let a_lines = reader.join().unwrap();
    assert!(status.success(), "pod A: {status:?} {a_lines:?}");
    assert!(a_lines.iter().any(|l| l == "[srv] done"), "{a_lines:?}");
    inst.assert_clean(&[&ua, &ub]);
}

#[test]
fn the_first_failing_exit_code_is_podshims() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(6);
    let yaml = pod(
        &inst.name("codes"),
        &u,
        "Never",
        &(container("ok", "true", "") + &container("bad", "sleep 0.3; exit 3", "")),
        "",
    );
    let out = inst.run(&yaml, T);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_container_killed_by_a_signal_gives_128_plus_n() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(7);
    let marker = format!("4{}", std::process::id() % 1000 + 1000);
    let yaml = pod(
        &inst.name("killed"),
        &u,
        "Never",
        &container("victim", &format!("exec sleep {marker}"), ""),
        "",
    );
    let child = inst.spawn(&yaml);
    let pattern = format!("^sleep {marker}$");
    let mut killed = false;
    for _ in 0..300 {
        if Command::new("pkill")
            .args(["-KILL", "-f", &pattern])
            .status()
            .unwrap()
            .success()
        {
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(killed, "the container's sleep never showed up");
    let out = wait_output(child, T);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_restarted_container_finds_its_empty_dir_file() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(8);
    let script = "if [ -f /data/marker ]; then echo found-$(cat /data/marker); exit 0; fi; echo first > /data/marker; echo failing; exit 1";
    let yaml = pod(
        &inst.name("restart"),
        &u,
        "OnFailure",
        &container(
            "job",
            script,
            "    volumeMounts:\n    - {name: data, mountPath: /data}\n",
        ),
        "  volumes:\n  - name: data\n    emptyDir: {}\n",
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    assert_eq!(
        lines_of(&stdout(&out), "job"),
        vec!["failing", "found-first"],
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn sigterm_stops_every_container_and_tears_down() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(9);
    let yaml = pod(
        &inst.name("stop"),
        &u,
        "Always",
        &(container(
            "polite",
            "trap \"echo bye; exit 0\" TERM; echo up; while true; do sleep 0.1; done",
            "",
        ) + &container("stubborn", "echo up; exec sleep 1000", "")),
        "",
    );
    let mut child = inst.spawn(&yaml);
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // Wait until both containers run.
    let mut up = false;
    for _ in 0..300 {
        let n = Command::new("pgrep")
            .args(["-f", "^sleep 1000$"])
            .output()
            .unwrap()
            .stdout
            .len();
        if n > 0 {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "containers did not start");
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    nix_kill(child.id(), "TERM");
    let out = wait_output(child, T);
    let lines = reader.join().unwrap();
    assert!(
        lines.contains(&"[polite] bye".to_string()),
        "{lines:?} {}",
        stderr(&out)
    );
    // The stubborn one (PID 1 ignores SIGTERM) is killed after the 2 s minimum grace.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "killed too early: {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    inst.assert_clean(&[&u]);
}

/// The last Pod on a bridge takes its veth and the bridge down in one kernel batch (the debug
/// log reports a fallback to deleting them one by one), the last container of each run is
/// deleted in that same teardown, and nothing is left after any run. The teardown holds the
/// Pod's network namespace open until the batch is done, so that the kernel cannot delete the
/// veth on its own meanwhile; that race is timing-dependent, and this test only catches it by
/// chance.
#[test]
fn the_last_pod_takes_its_veth_and_the_bridge_down_in_one_batch() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    inst.env
        .push(("PODSHIM_LOG".into(), "podshim_cni=debug".into()));
    // The bridge is kept unless asked otherwise (any of the usual spellings).
    inst.env
        .push(("PODSHIM_KEEP_BRIDGE".into(), "false".into()));
    for n in 0..6 {
        let u = uid(30 + n);
        let yaml = pod(
            &inst.name(&format!("batch{n}")),
            &u,
            "Never",
            &container("c", "true", ""),
            "",
        );
        let out = inst.run(&yaml, T);
        ok(&out);
        let err = stderr(&out);
        assert!(err.contains("pod network torn down"), "run {n}: {err}");
        assert!(!err.contains("batched delete failed"), "run {n}: {err}");
        assert!(
            !std::path::Path::new("/sys/class/net")
                .join(&inst.bridge)
                .exists(),
            "run {n}: the bridge went with the Pod"
        );
        inst.assert_clean(&[&u]);
    }
}

fn nix_kill(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
}

/// An overlay mount standing in for a container's root filesystem (overlayfs, as under
/// `docker run` without a volume); unmounted when dropped.
struct OverlayDir(std::path::PathBuf);

impl OverlayDir {
    fn new(base: &std::path::Path) -> Self {
        let [lower, upper, work, merged] =
            ["lower", "upper", "work", "merged"].map(|d| base.join(d));
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir_all(d).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "cannot mount an overlay on {}",
            merged.display()
        );
        OverlayDir(merged)
    }
}

impl Drop for OverlayDir {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_data_root_on_overlayfs_is_refused_with_the_fix_before_anything_is_created() {
    let mut inst = Instance::new(SUITE);
    let overlay = OverlayDir::new(&inst.dir.join("overlay"));
    inst.root = overlay.0.join("podshim");
    // Images may live there (lower directories can be on overlayfs); writable layers cannot.
    inst.import_busybox();
    let u = uid(20);
    let yaml = pod(
        &inst.name("ovl"),
        &u,
        "Never",
        &container("a", "echo should-not-run", ""),
        "",
    );
    let out = inst.run(&yaml, T);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let layers = inst.root.join("containers").join(&u);
    assert!(
        err.contains(&format!("{} is on overlayfs", layers.display())) && err.contains("--root"),
        "the error must name the path and the fix: {err}"
    );
    assert!(!stdout(&out).contains("should-not-run"), "{}", stdout(&out));
    assert!(!layers.exists(), "{} left behind", layers.display());
    // assert_clean counts every mount under the instance: this one is the test's own.
    drop(overlay);
    inst.assert_clean(&[&u]);
}
