//! Unit tests of the cgroup layer: mountinfo parsing, paths, views, OOM counts.

use super::*;

const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
37 35 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
38 35 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 35 0:34 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 35 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";
const UNIFIED: &str = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

#[test]
fn detects_hybrid_and_controllers() {
    let c = Cgroups::from_mountinfo(HYBRID).unwrap();
    assert_eq!(c.mode, Mode::Hybrid);
    let managed: Vec<_> = c.managed().map(|h| h.mount.clone()).collect();
    assert_eq!(
        managed,
        vec![
            PathBuf::from("/sys/fs/cgroup/memory"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
            PathBuf::from("/sys/fs/cgroup/pids")
        ]
    );
    assert_eq!(c.hierarchies[3].controllers, vec!["cpu", "cpuacct"]);
    assert!(
        c.hierarchies[1].controllers.is_empty(),
        "named hierarchy has no controllers"
    );
}

#[test]
fn systemd_cgroup_paths_are_laid_out_as_systemd_does() {
    assert_eq!(cgroupfs_path("/podshim/u/c"), "/podshim/u/c");
    assert_eq!(
        cgroupfs_path("kubepods-besteffort-pod12.slice:cri-containerd:abc"),
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
    );
    assert_eq!(
        cgroupfs_path("system.slice:docker:1"),
        "/system.slice/docker-1.scope"
    );
    assert_eq!(cgroupfs_path("-.slice:p:x"), "/p-x.scope");
}

#[test]
fn a_specs_cgroups_path_is_taken_in_either_form() {
    use libcontainer::oci_spec::runtime::LinuxBuilder;
    let spec = |path: Option<&str>| -> Spec {
        let linux = match path {
            Some(p) => LinuxBuilder::default().cgroups_path(p),
            None => LinuxBuilder::default(),
        };
        let mut spec = Spec::default();
        spec.set_linux(Some(linux.build().unwrap()));
        spec
    };
    let path_of = |s: &Spec| s.linux().as_ref().unwrap().cgroups_path().clone();
    let cgroupfs_spec_path = |s: &mut Spec| cgroupfs_spec_path_for(s, Driver::Cgroupfs);
    let mut cgroupfs = spec(Some("/podshim/u/c"));
    assert_eq!(cgroupfs_spec_path(&mut cgroupfs), "/podshim/u/c");
    assert_eq!(path_of(&cgroupfs), Some(PathBuf::from("/podshim/u/c")));
    let mut systemd = spec(Some("kubepods-burstable-pod7.slice:cri-containerd:c1"));
    let want = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7.slice/\
                cri-containerd-c1.scope";
    assert_eq!(cgroupfs_spec_path(&mut systemd), want);
    // libcontainer is given the cgroupfs form, so it makes the cgroup systemd would.
    assert_eq!(path_of(&systemd), Some(PathBuf::from(want)));
    // The systemd driver hands libcontainer the systemd form, for its systemd manager.
    let given = "kubepods-burstable-pod7.slice:cri-containerd:c1";
    let mut kept = spec(Some(given));
    assert_eq!(cgroupfs_spec_path_for(&mut kept, Driver::Systemd), want);
    assert_eq!(path_of(&kept), Some(PathBuf::from(given)));
    let mut plain = spec(Some("/podshim/u/c"));
    assert_eq!(
        cgroupfs_spec_path_for(&mut plain, Driver::Systemd),
        "/podshim/u/c"
    );
    let mut none = spec(None);
    assert_eq!(cgroupfs_spec_path(&mut none), "");
    assert_eq!(path_of(&none), None);
    let mut no_linux = Spec::default();
    no_linux.set_linux(None);
    assert_eq!(cgroupfs_spec_path(&mut no_linux), "");
}

#[test]
fn a_read_only_cgroup_mount_becomes_the_containers_own_view() {
    let spec_json = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": "/v", "options": ["rbind"]}
        ],
        "linux": {"cgroupsPath": "/podshim/u/c", "namespaces": [{"type": "mount"}]}
    });
    let skeleton = tempfile::tempdir().unwrap();
    let skeleton = skeleton.path().join("cgroupfs");

    let mut spec: Spec = serde_json::from_value(spec_json.clone()).unwrap();
    let hybrid = Cgroups::from_mountinfo(HYBRID).unwrap();
    hybrid.harden(&mut spec, &skeleton).unwrap();
    let mounts = spec.mounts().clone().unwrap();
    let dests: Vec<String> = mounts
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/pids",
            "/data"
        ]
    );
    assert_eq!(mounts[1].source().as_deref(), Some(skeleton.as_path()));
    assert_eq!(
        mounts[2].source().as_deref(),
        Some(Path::new("/sys/fs/cgroup/memory/podshim/u/c"))
    );
    for m in &mounts[1..5] {
        assert!(m.options().iter().flatten().any(|o| o == "ro"), "{m:?}");
    }
    assert!(skeleton.join("memory").is_dir() && skeleton.join("systemd").is_dir());

    let mut spec: Spec = serde_json::from_value(spec_json.clone()).unwrap();
    Cgroups::from_mountinfo(UNIFIED)
        .unwrap()
        .harden(&mut spec, &skeleton)
        .unwrap();
    assert_eq!(
        spec.mounts().as_ref().unwrap().len(),
        3,
        "the cgroup2 mount stays"
    );
    let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));

    // A privileged container's writable view is its own business.
    let mut privileged = spec_json;
    privileged["mounts"][1]["options"] = serde_json::json!(["nosuid"]);
    let mut spec: Spec = serde_json::from_value(privileged).unwrap();
    hybrid.harden(&mut spec, &skeleton).unwrap();
    assert_eq!(spec.mounts().as_ref().unwrap().len(), 3);
}

#[test]
fn v1_mount_options_are_not_controllers() {
    let text = "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,clone_children,name=systemd\n\
41 31 0:38 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,noprefix,cpuset_v2_mode,cpuset,release_agent=/x\n";
    let c = Cgroups::from_mountinfo(text).unwrap();
    assert!(c.hierarchies[0].controllers.is_empty());
    assert_eq!(c.hierarchies[1].controllers, vec!["cpuset"]);
    assert_eq!(c.managed().count(), 1);
}

#[test]
fn detects_unified_and_legacy() {
    let c = Cgroups::from_mountinfo(UNIFIED).unwrap();
    assert_eq!(c.mode, Mode::Unified);
    assert_eq!(c.managed().count(), 1);
    let legacy: String = HYBRID
        .lines()
        .filter(|l| !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(Cgroups::from_mountinfo(&legacy).unwrap().mode, Mode::Legacy);
    assert!(matches!(
        Cgroups::from_mountinfo(""),
        Err(CgroupError::NoCgroups)
    ));
}

#[test]
fn oom_kills_from_v1_oom_control_and_v2_events() {
    let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
    assert_eq!(oom_kill_count(v1), Some(2));
    let v2 = "low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\noom_group_kill 0\n";
    assert_eq!(oom_kill_count(v2), Some(1));
    // Kernels before 4.13 have no counter in memory.oom_control.
    assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), None);
    assert_eq!(oom_kill_count("oom_group_kill 3\n"), None);
}

#[test]
fn memory_hierarchy_per_mode() {
    let hybrid = Cgroups::from_mountinfo(HYBRID).unwrap();
    let m = hybrid.memory().unwrap();
    assert_eq!(m.mount, PathBuf::from("/sys/fs/cgroup/memory"));
    let unified = Cgroups::from_mountinfo(UNIFIED).unwrap();
    assert!(unified.memory().unwrap().v2);
    let no_memory: String = HYBRID
        .lines()
        .filter(|l| !l.contains("memory") && !l.contains("cgroup2"))
        .map(|l| format!("{l}\n"))
        .collect();
    let legacy = Cgroups::from_mountinfo(&no_memory).unwrap();
    assert!(legacy.memory().is_none());
    assert_eq!(legacy.oom_kills("/podshim/u/c"), None);
    assert!(!legacy.swap_limit_supported("/podshim/u"));
}

#[test]
fn pod_path_is_absolute_under_top() {
    assert_eq!(pod_path_for(Driver::Cgroupfs, "abc"), "/podshim/abc");
    assert_eq!(
        join(Path::new("/sys/fs/cgroup/pids"), "/podshim/abc"),
        PathBuf::from("/sys/fs/cgroup/pids/podshim/abc")
    );
}

#[test]
fn systemd_driver_pods_are_slices_and_containers_scopes_in_them() {
    let uid = "6b1f-22c3";
    let pod = pod_path_for(Driver::Systemd, uid);
    // A '-' nests slices, so the uid's dashes become '_' (as the kubelet writes them).
    assert_eq!(pod, "/podshim.slice/podshim-pod6b1f_22c3.slice");
    assert_eq!(slice_unit(&pod), Some("podshim-pod6b1f_22c3.slice"));
    let c = container_path(&pod, "app");
    assert_eq!(c, "podshim-pod6b1f_22c3.slice:podshim:pod6b1f_22c3-app");
    assert!(is_systemd_path(&c));
    // The scope systemd makes is where podshim reads the container's cgroup files.
    assert_eq!(
        cgroupfs_path(&c),
        "/podshim.slice/podshim-pod6b1f_22c3.slice/podshim-pod6b1f_22c3-app.scope"
    );
    // A cgroupfs Pod keeps its layout whatever the driver of the process that reads it.
    assert_eq!(slice_unit("/podshim/abc"), None);
    assert_eq!(container_path("/podshim/abc", "app"), "/podshim/abc/app");
    assert!(!is_systemd_path("/podshim/abc/app"));
    assert_eq!(Driver::parse("systemd").unwrap(), Driver::Systemd);
    assert_eq!(Driver::parse("cgroupfs").unwrap(), Driver::Cgroupfs);
    assert!(Driver::parse("auto").is_err());
}
