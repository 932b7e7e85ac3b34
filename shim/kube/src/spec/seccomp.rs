//! Seccomp filters for `securityContext.seccompProfile`: `RuntimeDefault` is containerd's default
//! profile (an allow list; everything else fails with EPERM), widened by the capabilities the
//! container holds as containerd widens it; `Localhost` is a profile file in the format
//! containerd and Docker read (`defaultAction`, `architectures`/`archMap`, `syscalls` with
//! `names`, `action`, `args`, `includes`/`excludes` by capability and architecture).

use std::path::Path;

use libcontainer::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::SpecError;

/// The system calls containerd's default profile allows to every container (its
/// `contrib/seccomp` list, written out here): no kernel modules, keyrings, mounts, namespaces,
/// clocks, tracing of other processes, BPF or perf, reboot, swap, or accounting.
const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk cachestat capget capset \
    chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 \
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range \
    connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl \
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve \
    execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark \
    fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr \
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync \
    ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake \
    futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid \
    getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid \
    getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list \
    getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 \
    getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl \
    io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup \
    io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule \
    landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen \
    listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise \
    map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat \
    mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
    mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget \
    msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat _newselect open openat \
    openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll \
    ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 \
    pselect6_time64 ptrace pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv \
    recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat \
    renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask \
    rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 \
    rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
    sched_get_priority_min sched_getscheduler sched_rr_get_interval \
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam \
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop \
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 \
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority \
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 \
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 \
    setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask \
    sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat \
    sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete \
    timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create \
    timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate \
    truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes \
    vfork vmsplice wait4 waitid waitpid write writev";

/// x86 only: the LDT and the thread's FS/GS base.
const X86_ONLY: &str = "arch_prctl modify_ldt";

/// What each capability adds to the default profile (containerd widens it the same way, since
/// a container given the capability is meant to use it).
const BY_CAPABILITY: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl \
         quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// The `clone` flags that make namespaces (`CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|
/// NEWNET`): without CAP_SYS_ADMIN, `clone` is allowed only with none of them set.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `personality(2)` personas the default profile allows: PER_LINUX, UNAME26, PER_LINUX32,
/// PER_LINUX32|UNAME26, and the query 0xffffffff.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// `AF_VSOCK`: sockets to the hypervisor are refused (`socket` is allowed for every other family).
const AF_VSOCK: u64 = 40;
const ENOSYS: u32 = 38;
const EPERM: u32 = 1;

fn names(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_string).collect()
}

fn rule(
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> Result<LinuxSyscall, SpecError> {
    let mut b = LinuxSyscallBuilder::default().names(names).action(action);
    if let Some(e) = errno {
        b = b.errno_ret(e);
    }
    if !args.is_empty() {
        b = b.args(args);
    }
    b.build()
        .map_err(SpecError::builder("linux.seccomp.syscalls"))
}

fn arg(index: usize, value: u64, two: Option<u64>, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    if let Some(t) = two {
        b = b.value_two(t);
    }
    b.build()
        .expect("a seccomp argument with every field is complete")
}

/// The architectures a filter covers on this machine (the native one and its compat modes).
fn native_arches() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        _ => vec![Arch::ScmpArchNative],
    }
}

/// containerd's default profile for a container holding `caps` (names as `CAP_…`).
pub fn runtime_default(caps: &[String]) -> Result<LinuxSeccomp, SpecError> {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut allowed = names(ALLOWED);
    if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        allowed.extend(names(X86_ONLY));
    }
    for (cap, calls) in BY_CAPABILITY {
        if has(cap) {
            allowed.extend(names(calls));
        }
    }
    allowed.sort();
    allowed.dedup();
    let mut syscalls = vec![rule(allowed.clone(), allow, None, vec![])?];
    for persona in PERSONAS {
        let a = arg(0, persona, None, LinuxSeccompOperator::ScmpCmpEq);
        syscalls.push(rule(names("personality"), allow, None, vec![a])?);
    }
    let not_vsock = arg(0, AF_VSOCK, None, LinuxSeccompOperator::ScmpCmpNe);
    syscalls.push(rule(names("socket"), allow, None, vec![not_vsock])?);
    if !has("CAP_SYS_ADMIN") {
        let no_namespaces = arg(
            0,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        );
        syscalls.push(rule(names("clone"), allow, None, vec![no_namespaces])?);
        // clone3's flags are behind a pointer a filter cannot read: ENOSYS makes libc fall
        // back to clone, whose flags it can.
        syscalls.push(rule(
            names("clone3"),
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            vec![],
        )?);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(native_arches())
        .syscalls(syscalls)
        .build()
        .map_err(SpecError::builder("linux.seccomp"))
}

/// A profile file as containerd and Docker read it (unknown keys, such as `comment`, ignored).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<libcontainer::oci_spec::runtime::LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<ProfileSyscall>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileSyscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

/// This machine's name for its architecture in profile `includes`/`excludes`.
fn arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A `Localhost` profile: the file at `path`, with its rules for other capabilities or
/// architectures left out.
pub fn localhost(path: &Path, caps: &[String]) -> Result<LinuxSeccomp, SpecError> {
    let text = std::fs::read(path).map_err(|source| SpecError::Profile {
        path: path.to_path_buf(),
        detail: source.to_string(),
    })?;
    let p: Profile = serde_json::from_slice(&text).map_err(|e| SpecError::Profile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let has_cap = |c: &String| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
    let arch = arch_name();
    let applies = |s: &ProfileSyscall| {
        s.includes.caps.iter().all(has_cap)
            && (s.includes.arches.is_empty() || s.includes.arches.iter().any(|a| a == arch))
            && !(s.excludes.caps.iter().any(has_cap))
            && !s.excludes.arches.iter().any(|a| a == arch)
    };
    let mut syscalls = Vec::new();
    for s in p.syscalls.iter().filter(|s| applies(s)) {
        let mut names = s.names.clone();
        names.extend(s.name.clone());
        if names.is_empty() {
            continue;
        }
        syscalls.push(rule(names, s.action, s.errno_ret, s.args.clone())?);
    }
    let mut arches = p.architectures;
    for m in p.arch_map {
        arches.push(m.architecture);
        arches.extend(m.sub_architectures);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(p.default_action)
        .syscalls(syscalls);
    if let Some(e) = p.default_errno_ret {
        b = b.default_errno_ret(e);
    }
    if !arches.is_empty() {
        b = b.architectures(arches);
    }
    if !p.flags.is_empty() {
        b = b.flags(p.flags);
    }
    b.build().map_err(SpecError::builder("linux.seccomp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls().as_ref().unwrap()[0].names().clone()
    }

    #[test]
    fn runtime_default_allows_the_usual_and_refuses_the_dangerous() {
        let caps: Vec<String> = super::super::DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let s = runtime_default(&caps).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(EPERM));
        let a = allowed(&s);
        for call in [
            "read",
            "openat",
            "execve",
            "chroot",
            "futex",
            "clock_gettime",
        ] {
            assert!(a.contains(&call.to_string()), "{call}");
        }
        for call in [
            "mount",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "kexec_load",
            "bpf",
            "reboot",
        ] {
            assert!(!a.contains(&call.to_string()), "{call}");
        }
        let rules = s.syscalls().as_ref().unwrap();
        let clone = rules.iter().find(|r| r.names() == &["clone"]).unwrap();
        assert_eq!(
            clone.args().as_ref().unwrap()[0].value(),
            CLONE_NAMESPACE_FLAGS
        );
        let clone3 = rules.iter().find(|r| r.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn capabilities_widen_the_default_profile() {
        let s = runtime_default(&["CAP_SYS_ADMIN".into(), "CAP_SYS_TIME".into()]).unwrap();
        let a = allowed(&s);
        for call in ["mount", "unshare", "clone", "clone3", "settimeofday"] {
            assert!(a.contains(&call.to_string()), "{call}");
        }
        // No chroot without CAP_SYS_CHROOT; no namespace-flag rule for clone with CAP_SYS_ADMIN.
        assert!(!a.contains(&"chroot".to_string()));
        assert!(s
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .all(|r| r.names() != &["clone3"] || r.action() == LinuxSeccompAction::ScmpActAllow));
    }

    #[test]
    fn a_localhost_profile_is_read_with_its_includes_and_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        std::fs::write(
            &path,
            r#"{"defaultAction": "SCMP_ACT_LOG", "comment": "from the Kubernetes tutorial",
                "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
                "syscalls": [
                  {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                  {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                  {"name": "uname", "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
                ]}"#,
        )
        .unwrap();
        let s = localhost(&path, &["CAP_CHOWN".into()]).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActLog);
        let rules = s.syscalls().as_ref().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].errno_ret(), Some(13));
        assert_eq!(rules[1].names(), &["uname"]);
        assert_eq!(
            s.architectures().as_ref().unwrap(),
            &[Arch::ScmpArchX86_64, Arch::ScmpArchX86]
        );
        let e = localhost(&dir.path().join("missing.json"), &[]).unwrap_err();
        assert!(e.to_string().contains("missing.json"), "{e}");
    }
}
