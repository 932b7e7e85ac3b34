//! Volumes end to end: `hostPath` with its types, `subPath` and `subPathExpr` (and an escape
//! through a planted symlink refused), `mountPropagation` and `recursiveReadOnly`, each next to
//! what the Kubernetes documentation says (quoted in the test's comment).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use podshim_tests::*;

const SUITE: u32 = 22;
const T: Duration = Duration::from_secs(60);

fn value(out: &str, container: &str, tag: &str) -> String {
    lines_of(out, container)
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{tag}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {tag}= line of {container} in:\n{out}"))
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// Mounts the test made on the host, unmounted (deepest first) whatever happens.
struct HostMounts(Vec<PathBuf>);

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// "A hostPath volume mounts a file or directory from the host node's filesystem into your Pod"
/// with the types: "DirectoryOrCreate: If nothing exists at the given path, an empty directory
/// will be created there as needed with permission set to 0755", "Directory: A directory must
/// exist at the given path", "FileOrCreate: If nothing exists at the given path, an empty file
/// will be created there as needed with permission set to 0644", "Socket: A UNIX socket must
/// exist at the given path" (Volumes / hostPath). A failed check keeps the Pod from starting
/// (the kubelet's `MountVolume.SetUp failed`); here nothing is created.
#[test]
fn host_path_types_are_checked_and_created() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let host = inst.dir.join("host");
    std::fs::create_dir_all(host.join("existing")).unwrap();
    std::fs::write(host.join("existing/hello"), "from-the-host\n").unwrap();
    let u = uid(1);
    let script = "echo read=$(cat /existing/hello); echo made > /made/by-pod; \
                  echo file=$(stat -c %s /file); echo dir=$(stat -c %a /made)";
    let mounts = "    volumeMounts:\n    - {name: existing, mountPath: /existing, readOnly: true}\n    - {name: made, mountPath: /made}\n    - {name: file, mountPath: /file}\n";
    let volumes = format!(
        "  volumes:\n  - name: existing\n    hostPath: {{path: {h}/existing, type: Directory}}\n  - name: made\n    hostPath:\n      path: {h}/new/dir\n      type: DirectoryOrCreate\n  - name: file\n    hostPath: {{path: {h}/new-file, type: FileOrCreate}}\n",
        h = host.display()
    );
    let out = inst.run(
        &pod(
            &inst.name("hp"),
            &u,
            "Never",
            &container("c", script, mounts),
            &volumes,
        ),
        T,
    );
    ok(&out);
    let out = stdout(&out);
    assert_eq!(value(&out, "c", "read"), "from-the-host", "{out}");
    assert_eq!(value(&out, "c", "file"), "0", "{out}");
    assert_eq!(value(&out, "c", "dir"), "755", "{out}");
    // The data outlives the Pod: a hostPath is the host's.
    assert_eq!(
        std::fs::read_to_string(host.join("new/dir/by-pod")).unwrap(),
        "made\n"
    );
    inst.assert_clean(&[&u]);

    let u = uid(2);
    let volumes = format!(
        "  volumes:\n  - name: s\n    hostPath: {{path: {h}/existing/hello, type: Socket}}\n  - name: d\n    hostPath: {{path: {h}/missing, type: Directory}}\n",
        h = host.display()
    );
    let mounts =
        "    volumeMounts:\n    - {name: s, mountPath: /s}\n    - {name: d, mountPath: /d}\n";
    let out = inst.run(
        &pod(
            &inst.name("hpbad"),
            &u,
            "Never",
            &container("c", "true", mounts),
            &volumes,
        ),
        T,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    for want in [
        format!("spec.volumes[0].hostPath: FailedMount: MountVolume.SetUp failed for volume \"s\" : hostPath type check failed: {}/existing/hello is not a socket file", host.display()),
        format!("spec.volumes[1].hostPath: FailedMount: MountVolume.SetUp failed for volume \"d\" : hostPath type check failed: {}/missing is not a directory", host.display()),
    ] {
        assert!(err.contains(&want), "missing {want}\nin {err}");
    }
    assert!(!host.join("missing").exists());
    inst.assert_clean(&[&u]);
}

/// "It is useful to share one volume for multiple uses in a single pod. The
/// volumeMounts[*].subPath property specifies a sub-path inside the referenced volume instead of
/// its root", and "Use the subPathExpr field to construct subPath directory names from
/// downward API environment variables" (Volumes / Using subPath). A symlink a container plants
/// to leave the volume is not followed out of it (CVE-2017-1002101).
#[test]
fn sub_paths_share_one_volume_and_cannot_escape_it() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("sub");
    let init = format!(
        "  initContainers:\n{}",
        container(
            "plant",
            "mkdir -p /v/html /v/logs && echo page > /v/html/index.html && ln -s /etc /v/escape && echo planted",
            "    volumeMounts: [{name: v, mountPath: /v}]\n",
        )
    );
    let web = container(
        "web",
        "echo web=$(cat /usr/share/nginx/html/index.html); echo logs=$(ls /var/log/pod)",
        "    env:\n    - name: POD_NAME\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    volumeMounts:\n    - {name: v, mountPath: /usr/share/nginx/html, subPath: html}\n    - {name: v, mountPath: /var/log/pod, subPathExpr: logs/$(POD_NAME)}\n",
    );
    let yaml = pod(
        &name,
        &u,
        "Never",
        &web,
        "  volumes: [{name: v, emptyDir: {}}]\n",
    )
    .replace("  containers:\n", &format!("{init}  containers:\n"));
    let out = inst.run(&yaml, T);
    ok(&out);
    let out = stdout(&out);
    assert_eq!(value(&out, "web", "web"), "page", "{out}");
    // subPathExpr made `logs/<pod name>` inside the volume; it is empty.
    assert_eq!(value(&out, "web", "logs"), "", "{out}");
    inst.assert_clean(&[&u]);

    let u = uid(4);
    let thief = container(
        "thief",
        "echo stolen=$(cat /stolen/passwd | head -1)",
        "    volumeMounts: [{name: v, mountPath: /stolen, subPath: escape}]\n",
    );
    let yaml = pod(
        &inst.name("esc"),
        &u,
        "Never",
        &thief,
        "  volumes: [{name: v, emptyDir: {}}]\n",
    )
    .replace("  containers:\n", &format!("{init}  containers:\n"));
    let out = inst.run(&yaml, T);
    assert!(!out.status.success(), "{}", stdout(&out));
    let all = stdout(&out) + &stderr(&out);
    assert!(
        all.contains("CreateContainerConfigError: failed to prepare subPath")
            && all.contains("subpath \"escape\" not within volume path"),
        "{all}"
    );
    assert!(!all.contains("stolen=root"), "{all}");
    inst.assert_clean(&[&u]);
}

/// "HostToContainer: This volume mount will receive all subsequent mounts that are mounted to
/// this volume or any of its subdirectories" (Volumes / Mount propagation), and
/// "recursiveReadOnly: Enabled [...] makes the mount recursively read-only" where a plain
/// `readOnly: true` leaves submounts writable (Volumes / Read-only mounts).
#[test]
fn mount_propagation_and_recursive_read_only() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let host = inst.dir.join("prop");
    let sub = host.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let mut mounts = HostMounts(vec![]);
    // The kubelet's requirement: the host path must be on a shared mount for propagation.
    sh(&format!(
        "mount --bind {h} {h} && mount --make-shared {h}",
        h = host.display()
    ));
    mounts.0.push(host.clone());
    sh(&format!("mount -t tmpfs -o size=1m sub {}", sub.display()));
    mounts.0.push(sub.clone());
    let u = uid(5);
    let script = "echo plain=$(touch /plain/sub/f 2>&1 && echo wrote || echo refused); \
                  echo rro=$(touch /rro/sub/f >/dev/null 2>&1 && echo wrote || echo refused); \
                  for i in $(seq 100); do [ -f /seen/late/ready ] && break; sleep 0.1; done; \
                  echo late=$(cat /seen/late/ready 2>/dev/null || echo missing)";
    let vm = "    volumeMounts:\n    - {name: h, mountPath: /plain, readOnly: true}\n    - {name: h, mountPath: /rro, readOnly: true, recursiveReadOnly: Enabled}\n    - {name: h, mountPath: /seen, mountPropagation: HostToContainer}\n";
    let volumes = format!(
        "  volumes:\n  - name: h\n    hostPath: {{path: {}, type: Directory}}\n",
        host.display()
    );
    let child = inst.spawn(&pod(
        &inst.name("prop"),
        &u,
        "Never",
        &container("c", script, vm),
        &volumes,
    ));
    // A mount made on the host after the container started.
    std::thread::sleep(Duration::from_secs(3));
    let late = host.join("late");
    std::fs::create_dir_all(&late).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=1m late {} && echo yes > {}/ready",
        late.display(),
        late.display()
    ));
    mounts.0.push(late.clone());
    let out = wait_output(child, T);
    ok(&out);
    let out = stdout(&out);
    // readOnly alone: the submount stays writable (the Kubernetes docs' warning).
    assert_eq!(value(&out, "c", "plain"), "wrote", "{out}");
    assert_eq!(value(&out, "c", "rro"), "refused", "{out}");
    assert_eq!(value(&out, "c", "late"), "yes", "{out}");
    drop(mounts);
    inst.assert_clean(&[&u]);
}

/// "Store Pod fields [...] as files" with a downwardAPI volume, labels as `key="value"` lines;
/// "A projected volume maps several existing volume sources into the same directory"
/// (secret, configMap, downwardAPI); and "fsGroup: [...] the owning GID will be the FSGroup,
/// the setgid bit is set [...] and the FSGroup is added to each container's supplementary
/// groups" (Configure a Security Context for a Pod).
#[test]
fn downward_api_projected_and_fs_group() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(6);
    let name = inst.name("dapi");
    let script = "echo labels=$(cat /podinfo/labels | tr '\\n' ','); \
                  echo cpu=$(cat /podinfo/cpu_limit); \
                  echo all=$(ls /all | tr '\\n' ','); echo user=$(cat /all/user); \
                  echo groups=$(id -G); echo owner=$(stat -c %g:%A /data); \
                  touch /data/f && echo fgroup=$(stat -c %g /data/f)";
    let mounts = "    resources: {limits: {cpu: 250m}}\n    securityContext: {runAsUser: 1000, runAsGroup: 3000}\n    volumeMounts:\n    - {name: podinfo, mountPath: /podinfo}\n    - {name: all, mountPath: /all}\n    - {name: data, mountPath: /data}\n";
    let volumes = "  securityContext: {fsGroup: 2000}\n  volumes:\n  - name: podinfo\n    downwardAPI:\n      items:\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n      - path: cpu_limit\n        resourceFieldRef: {containerName: c, resource: limits.cpu, divisor: 1m}\n  - name: all\n    projected:\n      sources:\n      - secret: {name: user}\n      - configMap: {name: settings, items: [{key: mode, path: config/mode}]}\n      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}\n  - name: data\n    emptyDir: {}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: user}\nstringData: {user: admin}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n";
    let yaml = pod(&name, &u, "Never", &container("c", script, mounts), volumes)
        .replace("  uid: ", "  labels: {app: web, tier: front}\n  uid: ");
    let out = inst.run(&yaml, T);
    ok(&out);
    let out = stdout(&out);
    // One `key="value"` line per label, no newline after the last (`fieldpath.FormatMap`).
    assert_eq!(
        value(&out, "c", "labels"),
        "app=\"web\",tier=\"front\"",
        "{out}"
    );
    assert_eq!(value(&out, "c", "cpu"), "250", "{out}");
    assert_eq!(value(&out, "c", "all"), "config,name,user,", "{out}");
    assert_eq!(value(&out, "c", "user"), "admin", "{out}");
    let groups = value(&out, "c", "groups");
    assert!(groups.split(' ').any(|g| g == "2000"), "{out}");
    assert!(
        value(&out, "c", "owner").starts_with("2000:drwxrwsrwx"),
        "{out}"
    );
    assert_eq!(value(&out, "c", "fgroup"), "2000", "{out}");
    inst.assert_clean(&[&u]);
}
