//! The pause process of a podshim Pod, in the spirit of Kubernetes' `build/pause/linux/pause.c`.
//!
//! `pause [--hostname NAME] [--user UID:GID] [--host-network | --netns PATH] [--pid]
//! [--die-with-parent PID] [--new-userns | --userns PATH]`
//!
//! With `--new-userns` (a Pod with `hostUsers: false`) it first unshares a user namespace, writes
//! `userns\n` and waits for one byte on stdin: the runtime writes the namespace's ID maps
//! meanwhile. With `--userns PATH` it joins that user namespace instead (a sandbox made anew
//! keeps the Pod's). Every namespace it makes afterwards is then owned by that user namespace,
//! so that the Pod's containers, which join it, are privileged over them.
//!
//! With `--hostname` it first unshares new network, IPC and UTS namespaces (only IPC and UTS with
//! `--host-network`: a `hostNetwork` Pod stays in the host's) and sets the hostname
//! in the new UTS namespace (containers that join a UTS namespace by path cannot set it
//! themselves). With `--user` it then drops every privilege: supplementary groups, gid, uid (which
//! clears the permitted and effective capability sets), the bounding and ambient sets, and sets
//! no-new-privileges. It writes `ready\n` to stdout, points its stdio at /dev/null, and then only
//! waits: SIGINT
//! and SIGTERM exit 0, SIGCHLD reaps every exited child.
//!
//! With `--pid` (a Pod with `shareProcessNamespace: true`) it also unshares a PID namespace and
//! forks: the child is PID 1 of the Pod's processes and reaps the orphans of every container, as
//! Kubernetes' pause does there; the parent holds nothing but the namespace's
//! `pid_for_children` (which the containers join) and takes the child with it when it is
//! stopped (the child's parent-death signal is SIGKILL, and PID 1's death ends the namespace).
//!
//! With `--die-with-parent PID` (PID: the runtime that starts it) it gets SIGKILL when its
//! parent dies (`PR_SET_PDEATHSIG`), from its start until the runtime has recorded
//! it and hands it over: after `ready` it reads its stdin; one byte releases it (the signal is
//! cleared), end of file (the runtime gone or giving up) makes it exit. A runtime killed
//! between the fork and its record of pause thus never leaves an orphaned pause behind.
#![allow(unsafe_code)] // this binary is one small module of raw libc calls, each with a SAFETY note

use std::ffi::CString;
use std::io::Write;
use std::process::exit;

fn fail(what: &str) -> ! {
    let err = std::io::Error::last_os_error();
    eprintln!("pause: {what}: {err}");
    exit(1)
}

extern "C" fn on_stop(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn on_child(_: libc::c_int) {
    // SAFETY: waitpid with WNOHANG is async-signal-safe; errno is saved and restored around it
    // so the interrupted code does not see it change.
    unsafe {
        let saved = *libc::__errno_location();
        while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
        *libc::__errno_location() = saved;
    }
}

fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is a valid value; the handler is an `extern "C"` function that
    // only calls async-signal-safe functions.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        fail("sigaction");
    }
}

/// How the Pod's network namespace comes about.
enum Net {
    /// A new one, held by pause.
    New,
    /// The host's (`hostNetwork`).
    Host,
    /// One that exists already (a path to its nsfs file, as a containerd shim gets it).
    Join(String),
}

fn join_netns(path: &str) {
    let Ok(c) = CString::new(path) else {
        fail("--netns path")
    };
    // SAFETY: `c` is a valid C string; the returned descriptor is checked and closed below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        fail("open the --netns path");
    }
    // SAFETY: setns takes a descriptor we own and a namespace type; the process is
    // single-threaded, which setns of a network namespace does not even require.
    let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    if rc != 0 {
        fail("setns to the --netns path");
    }
}

/// The Pod's user namespace: a new one (`None`), whose ID maps the runtime writes while pause
/// waits, or an existing one joined by path.
fn user_namespace(join: Option<&str>, parent: Option<libc::pid_t>) {
    match join {
        Some(path) => {
            let Ok(c) = CString::new(path) else {
                fail("--userns path")
            };
            // SAFETY: `c` is a valid C string; the returned descriptor is checked and closed.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                fail("open the --userns path");
            }
            // SAFETY: setns takes a descriptor we own and a namespace type; the process is
            // single-threaded, which joining a user namespace requires.
            let rc = unsafe { libc::setns(fd, libc::CLONE_NEWUSER) };
            // SAFETY: `fd` is ours and closed once.
            unsafe { libc::close(fd) };
            if rc != 0 {
                fail("setns to the --userns path");
            }
        }
        None => {
            // SAFETY: unshare takes only flags; the process is single-threaded.
            if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
                fail("unshare a user namespace");
            }
            let mut out = std::io::stdout();
            if out
                .write_all(b"userns\n")
                .and_then(|_| out.flush())
                .is_err()
            {
                exit(1);
            }
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into `byte`, which outlives the call.
            if unsafe { libc::read(0, (&mut byte as *mut u8).cast(), 1) } != 1 {
                exit(1);
            }
        }
    }
    // The credential change of entering a user namespace clears the parent-death signal.
    if let Some(pid) = parent {
        die_with(pid);
    }
}

fn new_namespaces(hostname: &str, network: &Net) {
    let net = match network {
        Net::New => libc::CLONE_NEWNET,
        Net::Host => 0,
        Net::Join(path) => {
            join_netns(path);
            0
        }
    };
    // SAFETY: unshare takes only flags; the process is single-threaded.
    if unsafe { libc::unshare(net | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) } != 0 {
        fail("unshare network, ipc and uts namespaces");
    }
    // SAFETY: the pointer and length describe the bytes of `hostname`, which outlives the call.
    if unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) } != 0 {
        fail("sethostname");
    }
}

fn drop_privileges(uid: libc::uid_t, gid: libc::gid_t) {
    // SAFETY: each call takes plain integers (or a null list with length 0) and only changes
    // this process's credentials; the return values are checked.
    unsafe {
        for cap in 0..=libc::c_ulong::from(63u8) {
            // EINVAL past the last capability the kernel knows: nothing more to drop.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                break;
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            fail("clear ambient capabilities");
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            fail("setgroups");
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            fail("setresgid");
        }
        // Changing every uid from 0 to non-zero clears the permitted and effective sets
        // (capabilities(7), "Effect of user ID changes on capabilities").
        if libc::setresuid(uid, uid, uid) != 0 {
            fail("setresuid");
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail("no_new_privs");
        }
    }
}

/// The address ranges of this process's program text (`r-xp` file mappings). Read early: once
/// pause has dropped its privileges, /proc/self is no longer readable to it.
fn text_ranges() -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let range = w.next()?;
            let perms = w.next()?;
            let inode = w.nth(2)?;
            if perms != "r-xp" || inode == "0" {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// Drop the resident text pages the start-up touched: pause then holds only the few pages its
/// wait loop and signal handlers use (Kubernetes' pause is a few kB of C; this keeps a Rust
/// pause close to that).
fn trim(ranges: &[(usize, usize)]) {
    for (start, end) in ranges {
        // SAFETY: each range is a whole read-only, executable file mapping of this process
        // (program text is never written), so MADV_DONTNEED only drops page-table entries; the
        // pages fault back in unchanged from the file when executed again.
        unsafe {
            libc::madvise(
                *start as *mut libc::c_void,
                end - start,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Get SIGKILL when the parent dies, and exit now if `parent` is already gone (its orphans are
/// re-parented, so the parent PID changes). Set again after each credential change, which
/// clears it (prctl(2), PR_SET_PDEATHSIG).
fn die_with(parent: libc::pid_t) {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; getppid cannot fail.
    unsafe {
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail("PR_SET_PDEATHSIG");
        }
        if libc::getppid() != parent {
            exit(1);
        }
    }
}

/// Wait on stdin for the runtime's hand-over (one byte), then keep living without it; end of
/// file or an error means the runtime is gone or gave up on this Pod.
fn await_hand_over() {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into `byte`, which outlives the call.
        let n = unsafe { libc::read(0, (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 => break,
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => exit(1),
        }
    }
    // SAFETY: clearing the parent-death signal takes only integers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
}

fn parse_user(value: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let (uid, gid) = value.split_once(':').unwrap_or((value, value));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut hostname, mut user, mut network) = (None, None, Net::New);
    let mut parent = None;
    let mut share_pid = false;
    let (mut new_userns, mut join_userns) = (false, None);
    while let Some(arg) = args.next() {
        if arg == "--new-userns" {
            new_userns = true;
            continue;
        }
        if arg == "--host-network" {
            network = Net::Host;
            continue;
        }
        if arg == "--pid" {
            share_pid = true;
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--hostname", Some(v)) => hostname = Some(v),
            ("--netns", Some(v)) => network = Net::Join(v),
            ("--userns", Some(v)) => join_userns = Some(v),
            ("--die-with-parent", Some(v)) => match v.parse::<libc::pid_t>() {
                Ok(pid) => {
                    parent = Some(pid);
                    die_with(pid);
                }
                Err(_) => {
                    eprintln!("pause: --die-with-parent: invalid PID {v:?}");
                    exit(2)
                }
            },
            ("--user", Some(v)) => match parse_user(&v) {
                Some(u) => user = Some(u),
                None => {
                    eprintln!("pause: --user: invalid value {v:?}: want UID[:GID]");
                    exit(2)
                }
            },
            _ => {
                eprintln!(
                    "usage: pause [--hostname NAME] [--user UID:GID] [--host-network | --netns PATH] [--pid] [--die-with-parent PID] [--new-userns | --userns PATH]"
                );
                exit(2)
            }
        }
    }
    let text = text_ranges();
    let mut child = 0;
    install(libc::SIGINT, on_stop);
    install(libc::SIGTERM, on_stop);
    install(libc::SIGCHLD, on_child);
    if new_userns || join_userns.is_some() {
        user_namespace(join_userns.as_deref(), parent);
    }
    if let Some(name) = &hostname {
        new_namespaces(name, &network);
    }
    if share_pid {
        // SAFETY: unshare takes only flags; the process is single-threaded.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            fail("unshare a pid namespace");
        }
    }
    if let Some((uid, gid)) = user {
        drop_privileges(uid, gid);
        if let Some(pid) = parent {
            die_with(pid);
        }
        if new_userns || join_userns.is_some() {
            // Changing uids made pause non-dumpable, and a non-dumpable process's namespace
            // files only open to a process privileged in the user namespace it was executed in
            // (the host's): the Pod's containers, privileged in the Pod's user namespace only,
            // could not join pause's UTS and IPC namespaces by /proc/PID/ns. Dumpable, they are
            // checked against the Pod's user namespace, where pause runs.
            // SAFETY: prctl with PR_SET_DUMPABLE takes only integers.
            if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
                fail("PR_SET_DUMPABLE");
            }
        }
    }
    if share_pid {
        child = fork_init();
    }
    let root = CString::new("/").expect("no nul");
    // SAFETY: `root` is a valid C string that outlives the call.
    if unsafe { libc::chdir(root.as_ptr()) } != 0 {
        fail("chdir /");
    }
    // Tell the runtime the namespaces exist (the PID namespace's init, when there is one, says
    // it once it runs), then let go of the pipe so it sees EOF.
    if child == 0 {
        let mut out = std::io::stdout();
        if out.write_all(b"ready\n").and_then(|_| out.flush()).is_err() {
            exit(1);
        }
    }
    // The runtime hands over the process it started (the namespace holder), never its init.
    let init = share_pid && child == 0;
    if parent.is_some() && !init {
        await_hand_over();
    }
    // Let go of every stdio stream: pause outlives nothing it should hold, and a caller's pipe
    // or terminal must see EOF when the caller is done with it.
    let null = CString::new("/dev/null").expect("no nul");
    // SAFETY: `null` is a valid C string; dup2 onto our own fds 0-2 only replaces them.
    unsafe {
        let fd = libc::open(null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd >= 0 {
            for target in 0..=2 {
                libc::dup2(fd, target);
            }
            libc::close(fd);
        }
    }
    trim(&text);
    loop {
        // SAFETY: pause only sleeps until a signal handler has run.
        unsafe { libc::pause() };
        // The holder of a PID namespace ends with its init (reaped by `on_child`).
        // SAFETY: kill with signal 0 only asks whether the process exists.
        if child > 0 && unsafe { libc::kill(child, 0) } != 0 {
            exit(1);
        }
    }
}

/// Fork the PID namespace's init: returns its PID in the parent, 0 in the child (PID 1).
fn fork_init() -> libc::pid_t {
    // The parent holds the write end of this pipe until it dies: the child sees it hang up if the
    // parent died before the parent-death signal was set (getppid is 0 across the namespace, so
    // it cannot tell).
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail("pipe");
    }
    // SAFETY: the process is single-threaded, so the child may run any code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork the pid namespace's init");
    }
    if pid == 0 {
        // SAFETY: prctl and close take plain integers; poll gets one valid pollfd.
        unsafe {
            libc::close(fds[1]);
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                fail("set the parent-death signal");
            }
            let mut p = libc::pollfd {
                fd: fds[0],
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLHUP != 0 {
                exit(1);
            }
            libc::close(fds[0]);
        }
    } else {
        // SAFETY: the read end is ours and closed once; the write end stays open on purpose.
        unsafe { libc::close(fds[0]) };
    }
    pid
}
