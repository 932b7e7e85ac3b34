#!/usr/bin/env python3
"""The measuring half of scripts/bench-pod.sh (run that, not this): sets up the private podshim,
runc and podman instances in $BENCH_TMP, times interleaved cycles, measures RSS and writes the
report. bench-pod.sh's EXIT trap removes everything this creates."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

TMP = os.environ["BENCH_TMP"]
RUN = os.environ["BENCH_RUN"]  # tmpfs: live state, where each tool keeps it by default
N = int(os.environ["BENCH_ITERATIONS"])
WARMUP = 2
IMAGE = os.path.abspath(os.environ["BENCH_IMAGE"])
REPORT = os.environ["BENCH_REPORT"]
BRIDGE = os.environ["BENCH_BRIDGE"]
PODSHIM = [os.path.abspath("target/release/podshim"), "--root", f"{TMP}/podshim/root",
           "--state", f"{RUN}/podshim", "--log-root", f"{TMP}/podshim/logs",
           "--bridge", BRIDGE, "--subnet", os.environ["BENCH_SUBNET"]]
# The bridge a Pod makes and removes: another instance (bridge and subnet), so that the
# default instance's bridge stays as on a node.
PODSHIM_NOKEEP = [a for a in PODSHIM]
PODSHIM_NOKEEP[PODSHIM_NOKEEP.index("--bridge") + 1] = BRIDGE + "n"
PODSHIM_NOKEEP[PODSHIM_NOKEEP.index("--subnet") + 1] = os.environ["BENCH_SUBNET_NOKEEP"]
PODSHIM_NOKEEP.append("--keep-bridge=false")
# BENCH_BASELINE: another podshim build (its pause next to it), e.g. an older commit's, run in the
# same loop (variants base-a, base-b, base-d) with an instance of its own, to compare two
# commits under the same load.
BASELINE = os.environ.get("BENCH_BASELINE")
BASE = [os.path.abspath(BASELINE), "--root", f"{TMP}/base/root", "--state", f"{RUN}/base",
        "--log-root", f"{TMP}/base/logs", "--bridge", BRIDGE,
        "--subnet", os.environ["BENCH_SUBNET"]] if BASELINE else None
RUNC = ["runc", "--root", f"{RUN}/runc"]
PM_CONF = f"{TMP}/containers.conf"
PODMAN = ["podman", "--root", f"{TMP}/podman/root", "--runroot", f"{RUN}/podman",
          "--tmpdir", f"{RUN}/podman-tmp"]
PM_NET = "psbench-podman"

POD_A = """apiVersion: v1
kind: Pod
metadata:
  name: psbench-a
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.35
    command: ["true"]
"""
POD_B = """apiVersion: v1
kind: Pod
metadata:
  name: psbench-b
spec:
  restartPolicy: Never
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: one
    image: busybox:1.35
    command: ["true"]
    volumeMounts:
    - name: shared
      mountPath: /shared
  - name: two
    image: busybox:1.35
    command: ["true"]
    volumeMounts:
    - name: shared
      mountPath: /shared
"""
POD_MEM = """apiVersion: v1
kind: Pod
metadata:
  name: psbench-mem
spec:
  restartPolicy: Never
  containers:
  - name: sleeper
    image: busybox:1.35
    command: ["sleep", "5"]
"""
POD_D = """apiVersion: v1
kind: Pod
metadata:
  name: psbench-d
spec:
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: one
    image: busybox:1.35
    command: ["sleep", "3600"]
    volumeMounts:
    - name: shared
      mountPath: /shared
  - name: two
    image: busybox:1.35
    command: ["sleep", "3600"]
    volumeMounts:
    - name: shared
      mountPath: /shared
"""
# podman resolves busybox:1.35 to the tagged localhost/busybox:1.35 and, the tag not being
# "latest", kube play's default pull policy is IfNotPresent: it never pulls, so the same YAML is
# used for podshim and podman (no imagePullPolicy needed; setup checks that nothing is pulled).


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None, check=True):
    """Run cmd, return (seconds, CompletedProcess); abort the benchmark on failure."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, text=True)
    dt = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise Failure(f"`{' '.join(cmd)}` exited {p.returncode}:\n{p.stdout}")
    return dt, p


class Failure(Exception):
    pass


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


# ---------------------------------------------------------------- setup

def setup_podshim():
    for name, text in (("a", POD_A), ("b", POD_B), ("mem", POD_MEM), ("d", POD_D)):
        write(f"{TMP}/pod-{name}.yaml", text)
    run(PODSHIM + ["image", "import", "--name", "busybox:1.35", IMAGE])
    if BASE:
        run(BASE + ["image", "import", "--name", "busybox:1.35", IMAGE])


def setup_runc():
    os.makedirs(f"{RUN}/runc")
    os.makedirs(f"{TMP}/oci")
    subprocess.run(["tar", "-C", f"{TMP}/oci", "-xf", IMAGE], check=True)
    run(["umoci", "unpack", "--image", f"{TMP}/oci:1.35", f"{TMP}/bundle"])
    path = f"{TMP}/bundle/config.json"
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["true"]
    cfg["process"]["terminal"] = False
    # umoci's default (nofile 1024) is within this host's hard limit (20000); keep it explicit.
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    cfg["linux"]["cgroupsPath"] = "/psbench/runc"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def podman_env():
    return dict(os.environ, CONTAINERS_CONF=PM_CONF)


def setup_podman():
    """Private podman: own config, storage, tmpdir and network. Returns None or why it can't run."""
    if not shutil.which("podman"):
        return "podman is not installed"
    os.makedirs(f"{TMP}/podman/networks")
    # nproc too: podman's default nproc limit (4194304) is above this host's hard limit.
    write(PM_CONF, f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "{RUN}/podman-tmp"
[network]
network_config_dir = "{TMP}/podman/networks"
default_network = "{PM_NET}"
""")
    # podman 4.3's `network create` cannot name the bridge: write the network file instead.
    write(f"{TMP}/podman/networks/{PM_NET}.json", json.dumps({
        "name": PM_NET, "id": "7073626e" + "0" * 56, "driver": "bridge",
        "network_interface": os.environ["BENCH_PODMAN_BRIDGE"], "created": "2026-01-01T00:00:00Z",
        "subnets": [{"subnet": os.environ["BENCH_PODMAN_SUBNET"],
                     "gateway": os.environ["BENCH_PODMAN_SUBNET"].rsplit(".", 1)[0] + ".1"}],
        "ipv6_enabled": False, "internal": False, "dns_enabled": False,
        "ipam_options": {"driver": "host-local"}}, indent=1))
    for name, text in (("a", POD_A), ("b", POD_B), ("d", POD_D)):
        write(f"{TMP}/podman-{name}.yaml", text)
    env = podman_env()
    try:
        run(PODMAN + ["load", "-i", IMAGE], env=env)
        run(PODMAN + ["tag", "localhost/1.35:latest", "busybox:1.35"], env=env)
        # One trial cycle: it must neither fail nor pull.
        for v in ("a", "b"):
            _, p = run(PODMAN + ["kube", "play", "--network", PM_NET, f"{TMP}/podman-{v}.yaml"], env=env)
            if "pull" in p.stdout.lower():
                raise Failure(f"podman tried to pull:\n{p.stdout}")
            run(PODMAN + ["wait"] + PODMAN_CONTAINERS[v], env=env)
            run(PODMAN + ["pod", "rm", "-f", "-t", "0", f"psbench-{v}"], env=env)
    except Failure as e:
        return f"podman failed in setup: {e}"
    return None


PODMAN_CONTAINERS = {"a": ["psbench-a-c"], "b": ["psbench-b-one", "psbench-b-two"]}

# ---------------------------------------------------------------- cycles

bridge_left = 0


def podshim_cycle(v, keep=True, cmd=None):
    global bridge_left
    dt, _ = run((cmd or (PODSHIM if keep else PODSHIM_NOKEEP)) + ["run", f"{TMP}/pod-{v}.yaml"])
    if cmd is None and not keep and os.path.exists(f"/sys/class/net/{BRIDGE}n"):
        bridge_left += 1
    return dt


def runc_cycle():
    dt, _ = run(RUNC + ["run", "--bundle", f"{TMP}/bundle", "psbench-runc"])
    return dt


FLOOR_NS, FLOOR_BR, FLOOR_VETH, FLOOR_GROUP = "psbench-floor", "psbfloor0", "psbfloorv", "1886610000"


def net_floor_cycle():
    """The kernel's share of a Pod's network alone, by one `ip -batch` process (podshim is one
    process too): a netns, a bridge and a veth pair into the netns, both up, then both links
    deleted in one batch (a link group, as podshim's teardown does) and the netns. No
    container runs, no address or route is set."""
    batch = "\n".join([
        f"netns add {FLOOR_NS}",
        f"link add {FLOOR_BR} up type bridge",
        f"link add {FLOOR_VETH} up master {FLOOR_BR} type veth peer name eth0 netns {FLOOR_NS}",
        f"link set {FLOOR_VETH} group {FLOOR_GROUP}",
        f"link set {FLOOR_BR} group {FLOOR_GROUP}",
        f"link del group {FLOOR_GROUP}",
        f"netns del {FLOOR_NS}",
    ]) + "\n"
    t0 = time.perf_counter()
    p = subprocess.run(["ip", "-batch", "-"], input=batch, text=True, capture_output=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise Failure(f"ip -batch exited {p.returncode}: {p.stdout}{p.stderr}")
    return dt


podman_phases = {"a": [], "b": []}


def podman_cycle(v):
    env = podman_env()
    t0 = time.perf_counter()
    play, _ = run(PODMAN + ["kube", "play", "--network", PM_NET, f"{TMP}/podman-{v}.yaml"], env=env)
    wait, p = run(PODMAN + ["wait"] + PODMAN_CONTAINERS[v], env=env)
    # -t 0: the containers have exited; don't let a stop timeout of the infra container count.
    rm, _ = run(PODMAN + ["pod", "rm", "-f", "-t", "0", f"psbench-{v}"], env=env)
    dt = time.perf_counter() - t0
    podman_phases[v].append((play, wait, rm))
    codes = p.stdout.split()
    if any(c != "0" for c in codes):
        raise Failure(f"podman containers of psbench-{v} exited {codes}")
    return dt


# ---------------------------------------------------------------- detached Pods

def smaps_rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if v.strip().endswith("kB"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


detached = {"podshim": [], "podman": []}
# (settle seconds, samples) of the steady-state memory measurement after the cycles.
steady = {}


def podshim_detached(settle=1.0, record=True, cmd=None, key="podshim"):
    """`run -d` + `rm -f` of a two-container Pod; RSS/PSS of the supervisor and pause in between.
    Returns the two times."""
    cmd = cmd or PODSHIM
    t_run, _ = run(cmd + ["run", "-d", f"{TMP}/pod-d.yaml"])
    time.sleep(settle)  # the supervisor waits in its loop
    _, p = run(cmd + ["ps", "-o", "wide"])
    row = [l.split() for l in p.stdout.splitlines() if " psbench-d " in f" {l} "]
    sup = int(row[0][-1])
    procs = [(sup, "supervisor")] + [(c, proc_status(c).get("Name", "?")) for c in descendants(sup)]
    pause = [c for c, n in procs if n == "pause"]
    mem = [(n, kb(proc_status(c)), smaps_rollup(c).get("Pss", 0)) for c, n in procs
           if c == sup or c in pause]
    t_rm, _ = run(cmd + ["rm", "-f", "--grace-period", "0", "psbench-d"])
    if record:
        detached.setdefault(key, []).append((t_run, t_rm, mem))
    else:
        steady[key] = mem
    return t_run + t_rm


def podman_detached(settle=1.0, record=True):
    """`kube play` (detached) + `pod rm -f -t 0`; RSS/PSS of podman's per-Pod processes (conmon
    of each container and of the infra container, and the infra's catatonit) in between."""
    env = podman_env()
    t_run, _ = run(PODMAN + ["kube", "play", "--network", PM_NET, f"{TMP}/podman-d.yaml"], env=env)
    time.sleep(settle)
    _, p = run(PODMAN + ["ps", "-a", "--filter", "pod=psbench-d", "--format", "{{.ID}}"], env=env)
    mem = []
    for cid in p.stdout.split():
        _, q = run(PODMAN + ["inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}} {{.IsInfra}}",
                             cid], env=env)
        conmon, pid, infra = q.stdout.split()
        mem.append(("conmon", kb(proc_status(conmon)), smaps_rollup(conmon).get("Pss", 0)))
        if infra == "true":
            name = proc_status(pid).get("Name", "infra")
            mem.append((name, kb(proc_status(pid)), smaps_rollup(pid).get("Pss", 0)))
    t_rm, _ = run(PODMAN + ["pod", "rm", "-f", "-t", "0", "psbench-d"], env=env)
    if record:
        detached["podman"].append((t_run, t_rm, mem))
    else:
        steady["podman"] = mem
    return t_run + t_rm


# ---------------------------------------------------------------- memory

def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_status(d)
            if "PPid" in st:
                children.setdefault(int(st["PPid"]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def kb(st):
    return int(st.get("VmRSS", "0 kB").split()[0])


def measure_memory():
    """RSS of podshim and its descendants while a `sleep 5` Pod runs."""
    proc = subprocess.Popen(PODSHIM + ["run", f"{TMP}/pod-mem.yaml"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rows = None
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and proc.poll() is None:
        procs = [(p, proc_status(p)) for p in descendants(proc.pid)]
        if any(st.get("Name") == "sleep" for _, st in procs):
            time.sleep(0.5)  # let podshim settle into its waiting state
            procs = [(proc.pid, proc_status(proc.pid))] + [(p, proc_status(p)) for p in descendants(proc.pid)]
            rows = [(p, st.get("Name", "?"), kb(st)) for p, st in procs]
            break
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=30)
    if proc.returncode != 0:
        raise Failure(f"podshim run of the sleep Pod exited {proc.returncode}:\n{out}")
    if rows is None:
        raise Failure("the sleep container was never seen running")
    return rows


# ---------------------------------------------------------------- report

def stats(xs):
    ms = [x * 1000 for x in xs]
    return statistics.median(ms), min(ms), max(ms)


def main():
    load_start = loadavg()
    t_start = time.perf_counter()
    setup_podshim()
    setup_runc()
    podman_reason = "disabled with --no-podman"
    if os.environ["BENCH_PODMAN"] == "1":
        podman_reason = setup_podman()
    use_podman = podman_reason is None
    if not use_podman:
        log(f"podman: not run: {podman_reason}")

    def nokeep(v):
        return lambda: podshim_cycle(v, keep=False)

    variants = [("podshim-a", lambda: podshim_cycle("a")), ("podshim-a-keep", nokeep("a")),
                ("runc", runc_cycle), ("net-floor", net_floor_cycle)]
    if use_podman:
        variants.append(("podman-a", lambda: podman_cycle("a")))
    variants.append(("podshim-b", lambda: podshim_cycle("b")))
    variants.append(("podshim-b-keep", nokeep("b")))
    if use_podman:
        variants.append(("podman-b", lambda: podman_cycle("b")))
    variants.append(("podshim-d", podshim_detached))
    if BASE:
        variants += [("base-a", lambda: podshim_cycle("a", cmd=BASE)),
                     ("base-b", lambda: podshim_cycle("b", cmd=BASE)),
                     ("base-d", lambda: podshim_detached(cmd=BASE, key="base"))]
    if use_podman:
        variants.append(("podman-d", podman_detached))
    times = {name: [] for name, _ in variants}
    for i in range(WARMUP + N):
        for name, cycle in variants:
            dt = cycle()
            if i >= WARMUP:
                times[name].append(dt)
            elif name in ("podshim-d", "podman-d", "base-d"):
                detached[name[:-2]].pop()
            elif name.startswith("podman"):
                podman_phases[name[-1]].pop()
        log(f"iteration {i + 1 - WARMUP if i >= WARMUP else 'warm-up'}/{N}: " +
            ", ".join(f"{n} {times[n][-1] * 1000:.1f}" if i >= WARMUP else n for n, _ in variants))
    mem = measure_memory()
    # Steady state: one Pod each, sampled after 12 s (an idle supervisor trims its resident
    # memory 10 s after its last work).
    podshim_detached(settle=12, record=False)
    if BASE:
        podshim_detached(settle=12, record=False, cmd=BASE, key="base")
    if use_podman:
        podman_detached(settle=12, record=False)
    load_end = loadavg()
    elapsed = time.perf_counter() - t_start

    lines = ["# podshim Pod cycle benchmark", ""]
    lines.append(f"{N} iterations (after {WARMUP} warm-up iterations), interleaved "
                 f"({' → '.join(times)}); wall-clock ms per whole cycle (start, containers run "
                 "`true` and exit, teardown).")
    lines.append(f"Load average at start: {load_start}; at end: {load_end}. "
                 f"{os.cpu_count()} CPUs; the machine is shared with other work, so absolute times "
                 "are noisy — compare within one run.")
    lines.append("")
    lines.append("| variant | what | median | min | max |")
    lines.append("|---|---|---:|---:|---:|")
    what = {"podshim-a": "`podshim run`, 1 container",
            "runc": "`runc run` of a bundle of the same image",
            "podman-a": "`podman kube play` + `wait` + `pod rm -f -t 0`, 1 container",
            "podshim-b": "`podshim run`, 2 containers + shared emptyDir",
            "podshim-a-keep": "`podshim --keep-bridge=false run`, 1 container (the Pod makes and removes the bridge and its node rules)",
            "podshim-b-keep": "`podshim --keep-bridge=false run`, 2 containers + shared emptyDir",
            "podman-b": "`podman kube play` + `wait` + `pod rm -f -t 0`, 2 containers + emptyDir",
            "podshim-d": "`podshim run -d` + `rm -f --grace-period 0`, 2 `sleep` containers",
            "podman-d": "`podman kube play` (detached) + `pod rm -f -t 0`, 2 `sleep` containers",
            "base-a": f"`podshim run`, 1 container, baseline build ({BASELINE})",
            "base-b": "`podshim run`, 2 containers + shared emptyDir, baseline build",
            "base-d": "`podshim run -d` + `rm -f --grace-period 0`, baseline build",
            "net-floor": "kernel floor of a Pod's network: one `ip -batch` makes a netns, a bridge "
                         "and a veth pair into the netns, deletes both links in one batch and the netns"}
    med = {}
    for name in times:
        m, lo, hi = stats(times[name])
        med[name] = m
        lines.append(f"| {name} | {what[name]} | {m:.1f} | {lo:.1f} | {hi:.1f} |")
    if not use_podman:
        lines.append("")
        lines.append(f"podman: not run: {podman_reason}")
    else:
        lines.append("")
        lines.append("podman's cycle by phase, median [min–max] ms: " + "; ".join(
            f"{v}: " + ", ".join(
                f"{ph} {statistics.median(xs) * 1000:.0f} [{min(xs) * 1000:.0f}–{max(xs) * 1000:.0f}]"
                for ph, xs in zip(("play", "wait", "pod rm"), zip(*podman_phases[v])))
            for v in ("a", "b")) + ".")
    lines.append("")
    lines.append("| ratio (of medians) | value | goal | holds |")
    lines.append("|---|---:|---|---|")
    ra = med["podshim-a"] / med["runc"]
    lines.append(f"| podshim-a / runc | {ra:.2f} | ≤ 1.5 | {'yes' if ra <= 1.5 else 'NO'} |")
    rk = med["podshim-a-keep"] / med["runc"]
    lines.append(f"| podshim-a-keep / runc | {rk:.2f} | ≤ 1.5 | {'yes' if rk <= 1.5 else 'NO'} |")
    if use_podman:
        rpa = med["podshim-a"] / med["podman-a"]
        lines.append(f"| podshim-a / podman-a | {rpa:.3f} | — | |")
        rb = med["podshim-b"] / med["podman-b"]
        lines.append(f"| podshim-b / podman-b | {rb:.3f} | ≤ 0.1 | {'yes' if rb <= 0.1 else 'NO'} |")
    if use_podman:
        rbk = med["podshim-b-keep"] / med["podman-b"]
        lines.append(f"| podshim-b-keep / podman-b | {rbk:.3f} | ≤ 0.1 | {'yes' if rbk <= 0.1 else 'NO'} |")
    b = med["podshim-b"]
    lines.append(f"| podshim-b median (ms) | {b:.1f} | ≤ 50 | {'yes' if b <= 50 else 'NO'} |")
    bk = med["podshim-b-keep"]
    lines.append(f"| podshim-b-keep median (ms) | {bk:.1f} | ≤ 50 | {'yes' if bk <= 50 else 'NO'} |")
    if BASE:
        for v in "abd":
            r = med[f"podshim-{v}"] / med[f"base-{v}"]
            lines.append(f"| podshim-{v} / base-{v} (this build against the baseline) | {r:.3f} | "
                         f"≤ 1.05 | {'yes' if r <= 1.05 else 'NO'} |")
    floor = med["runc"] + med["net-floor"]
    lines.append(f"| (runc + net-floor) / runc: what (a) would be if podshim added only the "
                 f"kernel's network work to `runc run` | {floor / med['runc']:.2f} | ≤ 2 | "
                 f"{'yes' if floor <= 2 * med['runc'] else 'NO'} |")
    goal_a = ra <= 1.5
    if b > 50 or (use_podman and med["podshim-b"] / med["podman-b"] > 0.1):
        goal_b = "not met"
    else:
        goal_b = "met" if use_podman else "undecided (≤ 50 ms, but podman not run)"
    lines.append("")
    lines.append(f"Goal (a) ≤ 1.5× `runc run` (issue 16): **{'met' if goal_a else 'not met'}**. "
                 f"Goal (b) ≤ 50 ms and ≤ 0.1× podman: **{goal_b}**.")
    lines.append("")
    lines.append("## Detached two-container Pods (issue 3)")
    lines.append("")
    lines.append("Time of the start command (returns once both containers run) and of the removal, "
                 "median [min–max] ms; memory of the processes each keeps per Pod, sampled 1 s "
                 "after the start, median VmRSS and Pss (kB; Pss shares pages among the processes "
                 "that map them, e.g. the podshim binary's with other podshim processes).")
    lines.append("")
    lines.append("| runtime | start | remove | per-Pod processes | VmRSS | Pss |")
    lines.append("|---|---:|---:|---|---:|---:|")
    d_rss = {}
    d_start = float("nan")
    for rt, rows in detached.items():
        if not rows:
            continue
        st = [r[0] * 1000 for r in rows]
        rm = [r[1] * 1000 for r in rows]
        rss = [sum(m[1] for m in r[2]) for r in rows]
        pss = [sum(m[2] for m in r[2]) for r in rows]
        names = ", ".join(m[0] for m in rows[-1][2])
        d_rss[rt] = statistics.median(rss)
        lines.append(f"| {rt} | {statistics.median(st):.0f} [{min(st):.0f}–{max(st):.0f}] | "
                     f"{statistics.median(rm):.0f} [{min(rm):.0f}–{max(rm):.0f}] | {names} | "
                     f"{statistics.median(rss):.0f} | {statistics.median(pss):.0f} |")
        if rt == "podshim":
            d_start = statistics.median(st)
    if steady:
        lines.append("")
        lines.append("Steady state (one Pod, sampled 12 s after its start), VmRSS / Pss kB: " + "; ".join(
            f"{rt}: " + ", ".join(f"{n} {r}/{p}" for n, r, p in mem) +
            f" = {sum(m[1] for m in mem)}/{sum(m[2] for m in mem)}"
            for rt, mem in steady.items()) + ".")
    if "podshim" in steady:
        total = sum(m[1] for m in steady["podshim"])
        lines.append("")
        lines.append(f"Idle supervisor + pause: {total} kB VmRSS (issue 3's goal: under 2048 kB: "
                     f"**{'met' if total < 2048 else 'not met'}**).")
    if detached["podshim"]:
        per = {}
        for r in detached["podshim"]:
            for n, rss, _ in r[2]:
                per.setdefault(n, []).append(rss)
        lines.append("")
        lines.append("podshim per process, median VmRSS: " + ", ".join(
            f"{n} {statistics.median(v):.0f} kB" for n, v in per.items()) +
            f". Supervisor + pause 1 s after the start: {d_rss['podshim']:.0f} kB.")
        lines.append("")
        lines.append(f"Issue 16: detached two-container start (`run -d` until both run) "
                     f"{d_start:.0f} ms, goal ≤ 40 ms: "
                     f"**{'met' if d_start <= 40 else 'not met'}**.")
    lines.append("")
    lines.append("## Resident memory while a foreground Pod with one `sleep 5` container runs")
    lines.append("")
    lines.append("| pid | process | VmRSS (kB) |")
    lines.append("|---:|---|---:|")
    for pid, name, rss in mem:
        label = f"podshim (supervisor; comm `{name}`)" if pid == mem[0][0] else name
        lines.append(f"| {pid} | {label} | {rss} |")
    sup = mem[0][2]
    pause = sum(r for _, n, r in mem if n == "pause")
    lines.append("")
    lines.append(f"foreground podshim + pause: {sup} + {pause} = {sup + pause} kB (the foreground "
                 "process keeps what its start touched; the detached supervisor above trims it).")
    lines.append("")
    lines.append(f"psbench0n bridge left after a --keep-bridge=false Pod: {bridge_left} time(s) "
                 f"(podshim removes it at teardown). Benchmark wall time: {elapsed:.0f} s.")
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(os.path.dirname(REPORT), exist_ok=True)
    write(REPORT, report)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        log(f"benchmark aborted: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("benchmark interrupted")
        sys.exit(130)
