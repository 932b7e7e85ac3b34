//! The shim benchmark (scripts/bench-shim.sh runs it with a release build of the shim): one
//! private containerd 1.6 with both handlers, the runs of each interleaved.
//!
//! - `ctr run --rm` of busybox `true` with `--runtime io.containerd.podshim.v1` against
//!   `io.containerd.runc.v2`, wall time of the ctr process;
//! - the CRI path: RunPodSandbox (podshim's pause, podshim-bridge) plus CreateContainer and
//!   StartContainer of two containers, until StartContainer of the second returns (the task
//!   runs then), per runtime handler; the Pod is stopped and removed between runs, untimed;
//! - memory: a Pod of pause + two `sleep` containers per handler, idle for 3 s, then the
//!   resident memory (VmRSS) and proportional share (Pss, /proc/PID/smaps_rollup) of the shim
//!   processes serving it (podshim's: its server and runtime helper; runc's: its
//!   containerd-shim-runc-v2).
//!
//! Ignored in the normal suite: `PODSHIM_BENCH_N` iterations (default 10), report on stdout and
//! in `PODSHIM_BENCH_REPORT` (default target/bench/bench-shim.md).

mod support;

use std::time::{Duration, Instant};

use support::cri::{self, Cri};
use support::ctr::{ok, BUSYBOX};
use support::daemon::{Containerd, Options};
use support::handler::Handler;

fn median_range(v: &mut [f64]) -> String {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!("{m:.1} ({:.1}–{:.1})", v[0], v[v.len() - 1])
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// The processes whose command line names shim id `id` and `binary` (a shim started for the
/// sandbox: `<binary> -namespace k8s.io -id <sandbox id> ...`).
fn shim_processes(binary: &str, id: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let named = args.first().is_some_and(|a| a.ends_with(binary));
        let has_id = args.windows(2).any(|w| w[0] == "-id" && w[1] == id);
        if named && has_id {
            pids.push(pid);
        }
    }
    pids
}

/// (VmRSS, Pss) of a process in kB.
fn memory_of(pid: u32) -> (u64, u64) {
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (field(&status, "VmRSS:"), field(&rollup, "Pss:"))
}

/// A Pod of pause and two containers running `command`; returns the sandbox id.
fn pod(d: &Containerd, cri: &mut Cri, h: &Handler, name: &str, command: &[&str]) -> String {
    let uid = format!("{name}-{}", d.tag);
    let logs = d.layout.dir.join("pods").join(&uid);
    std::fs::create_dir_all(&logs).unwrap();
    let parent = format!("{}/pod-{uid}", d.layout.cgroup_root);
    d.expect_cgroup(&parent);
    let config = cri::sandbox_config(name, &uid, &logs, &parent);
    let id = cri
        .run_pod_sandbox(&config, h.name)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", d.log_tail(20)));
    d.note_shim("k8s.io", &id);
    for c in ["one", "two"] {
        let cid = cri
            .create_container(&id, &cri::container_config(c, BUSYBOX, command), &config)
            .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
        cri.start_container(&cid)
            .unwrap_or_else(|e| panic!("StartContainer: {e}"));
    }
    id
}

fn remove(cri: &mut Cri, id: &str) {
    cri.stop_pod_sandbox(id).unwrap();
    cri.remove_pod_sandbox(id).unwrap();
}

#[test]
#[ignore = "a benchmark: scripts/bench-shim.sh runs it"]
fn bench_shim() {
    let n: usize = std::env::var("PODSHIM_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let podshim = Handler::podshim();
    let handlers = [podshim.clone(), Handler::runc()];
    let d = Containerd::start(Options {
        handlers: vec![podshim.clone()],
        cri: true,
    });
    d.import_busybox("default");
    d.import_pause("k8s.io");
    d.import_busybox("k8s.io");
    let mut cri = Cri::connect(&d);

    // Warm up both paths once (page cache, the image's snapshots).
    for h in &handlers {
        ok(&mut d.ctr_run(h, &format!("warm-{}", h.name), &["--rm"], &["true"]));
        let id = pod(
            &d,
            &mut cri,
            h,
            &format!("warm-{}", h.name),
            &["sleep", "3600"],
        );
        remove(&mut cri, &id);
    }

    let mut run: Vec<Vec<f64>> = vec![Vec::new(); 2];
    // containerd's own part of a `ctr run --rm`, no task and no shim: the container and its
    // snapshot made and removed by two ctr processes.
    let mut floor: Vec<f64> = Vec::new();
    let mut cri_times: Vec<Vec<f64>> = vec![Vec::new(); 2];
    for i in 0..n {
        for (k, h) in handlers.iter().enumerate() {
            let t = Instant::now();
            ok(&mut d.ctr_run(h, &format!("r{i}-{}", h.name), &["--rm"], &["true"]));
            run[k].push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = Instant::now();
        let name = format!("f{i}");
        ok(d.ctr("default")
            .args(["container", "create", BUSYBOX, &name, "true"]));
        ok(d.ctr("default").args(["container", "rm", &name]));
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
        for (k, h) in handlers.iter().enumerate() {
            let t = Instant::now();
            let id = pod(
                &d,
                &mut cri,
                h,
                &format!("p{i}-{}", h.name),
                &["sleep", "3600"],
            );
            cri_times[k].push(t.elapsed().as_secs_f64() * 1000.0);
            remove(&mut cri, &id);
        }
    }

    // Memory: one idle Pod per handler at the same time.
    let ids: Vec<String> = handlers
        .iter()
        .map(|h| {
            pod(
                &d,
                &mut cri,
                h,
                &format!("mem-{}", h.name),
                &["sleep", "3600"],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let mut memory = Vec::new();
    for (h, id) in handlers.iter().zip(&ids) {
        let binary = h.shim.file_name().unwrap().to_string_lossy().into_owned();
        let pids = shim_processes(&binary, id);
        assert!(!pids.is_empty(), "no {binary} process for sandbox {id}");
        let (rss, pss) = pids
            .iter()
            .map(|p| memory_of(*p))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        memory.push((binary, pids.len(), rss, pss));
    }
    for id in &ids {
        remove(&mut cri, id);
    }

    let mut report = String::new();
    report.push_str(&format!(
        "containerd 1.6 (private), {n} interleaved iterations, milliseconds: median (min–max)\n\n"
    ));
    report.push_str("| | podshim | runc | podshim / runc |\n|---|---:|---:|---:|\n");
    let ratio = |a: &[f64], b: &[f64]| median(a) / median(b);
    let (r0, r1) = (ratio(&run[0], &run[1]), ratio(&cri_times[0], &cri_times[1]));
    report.push_str(&format!(
        "| `ctr run --rm` busybox `true` | {} | {} | {r0:.2} |\n",
        median_range(&mut run[0].clone()),
        median_range(&mut run[1].clone())
    ));
    report.push_str(&format!(
        "| floor: `ctr container create` + `ctr container rm` (no task, no shim) | {} | | |\n",
        median_range(&mut floor.clone())
    ));
    report.push_str(&format!(
        "| CRI RunPodSandbox + 2 × (CreateContainer + StartContainer) | {} | {} | {r1:.2} |\n\n",
        median_range(&mut cri_times[0].clone()),
        median_range(&mut cri_times[1].clone())
    ));
    report.push_str(
        "| idle shim of a Pod (pause + 2 containers) | processes | VmRSS kB | Pss kB |\n|---|---:|---:|---:|\n",
    );
    for (binary, count, rss, pss) in &memory {
        report.push_str(&format!("| {binary} | {count} | {rss} | {pss} |\n"));
    }
    report.push_str(&format!(
        "\nmemory podshim / runc: VmRSS {:.2}, Pss {:.2}\n",
        memory[0].2 as f64 / memory[1].2 as f64,
        memory[0].3 as f64 / memory[1].3 as f64
    ));
    println!("{report}");
    let out = std::env::var_os("PODSHIM_BENCH_REPORT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| support::workspace().join("target/bench/bench-shim.md"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&out, report).unwrap();
    d.shutdown();
}
