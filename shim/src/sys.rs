//! The one place in the podshim crate that needs `unsafe`: process-wide signal dispositions.
#![allow(unsafe_code)]

/// Give every signal its default disposition back where podshim's parent (or the Rust runtime,
/// for SIGPIPE) left it ignored.
///
/// An ignored signal stays ignored across `execve(2)`, and libcontainer forks this process to
/// start containers, so without this a container would inherit whatever its runtime's parent
/// ignored (the Rust runtime ignores SIGPIPE before `main`, so `yes | head` inside a Pod would
/// never end). Handlers podshim installs later are reset by `execve` on their own.
pub fn reset_ignored_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: called at the start of `main`, before any thread exists. The raw
        // rt_sigaction(2) system call is used because glibc refuses to touch the two real-time
        // signals it reserves (32, 33); a zeroed `sigaction` with SIG_DFL is a valid value, and
        // a disposition is only changed from SIG_IGN to SIG_DFL (no handler code is involved).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let size = std::mem::size_of::<libc::c_ulong>();
            if libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<libc::sigaction>(),
                &mut old,
                size,
            ) != 0
            {
                continue;
            }
            if old.sa_sigaction == libc::SIG_IGN {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = libc::SIG_DFL;
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &new,
                    std::ptr::null_mut::<libc::sigaction>(),
                    size,
                );
            }
        }
    }
}

/// Drop this process's resident pages of read-only file mappings (program text, read-only data,
/// shared libraries) and give unused heap back: a long-running supervisor then holds only the
/// pages its loop touches again, not everything its setup touched. Returns the mappings trimmed.
///
/// Only mappings that are not writable and hold no private (copied-on-write) page are trimmed,
/// so nothing but page-table entries is dropped: each page comes back unchanged from its file on
/// the next access.
pub fn trim_resident_memory() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut trimmed = 0;
    let mut vma: Option<(usize, usize, bool)> = None;
    let mut flush = |vma: &mut Option<(usize, usize, bool)>, anon_kb: Option<u64>| {
        if let (Some((start, end, true)), Some(0)) = (vma.take(), anon_kb) {
            // SAFETY: [start, end) is a whole mapping of this process, read from /proc/self/smaps;
            // it is not writable and has no anonymous (COW) pages, so MADV_DONTNEED only unmaps
            // file-backed pages, which later faults map again with the same contents. The
            // caller is single-threaded (the supervisor loop), so nothing can make the mapping
            // writable in between.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if rc == 0 {
                trimmed += 1;
            }
        }
    };
    let mut anon: Option<u64> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            flush(&mut vma, anon);
            anon = None;
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = words.next().unwrap_or("----");
            let inode = words.nth(2).unwrap_or("0");
            let path = words.next().unwrap_or("");
            let eligible = perms.starts_with('r')
                && !perms.contains('w')
                && inode != "0"
                && !path.starts_with('[');
            vma = Some((start, end, eligible));
        } else if first == "Anonymous:" {
            anon = words.next().and_then(|n| n.parse().ok());
        }
    }
    flush(&mut vma, anon);
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    trimmed
}
