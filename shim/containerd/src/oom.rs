//! OOM kills of containers' memory cgroups, reported as `TaskOOM` (the CRI's `OOMKilled`).
//!
//! Each container is watched from Create on, before its process runs, so an OOM in its first
//! milliseconds is not missed (containerd-shim-runc-v2 1.6 subscribes only after Start): on
//! cgroup v1 an eventfd registered in `cgroup.event_control` for `memory.oom_control`, on v2
//! inotify on `memory.events`. One thread waits on all of them with epoll. An event is
//! published when the cgroup's `oom_kill` counter went up, once per increase (a v1 eventfd also
//! fires when the cgroup is removed); the exit path calls [`Monitor::catch_up`] before it
//! publishes an init's exit, so the OOM always comes before the exit it caused.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use containerd_shim_protos::events::task::TaskOOM;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use podshim_engine::cgroups::{cgroupfs_path, Cgroups, Mode};

use crate::events::{Event, Publish};

enum Source {
    V1 { efd: EventFd, _control: File },
    V2(Inotify),
}

struct Watch {
    id: String,
    dir: PathBuf,
    counter: &'static str,
    seen: u64,
    source: Source,
}

/// The OOM watches of this shim's containers.
pub struct Monitor {
    epoll: Epoll,
    watches: Mutex<(u64, HashMap<u64, Watch>)>,
    events: Arc<dyn Publish>,
}

/// The `oom_kill` counter of a `memory.oom_control` or `memory.events` text.
fn oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

fn read_counter(w: &Watch) -> Option<u64> {
    std::fs::read_to_string(w.dir.join(w.counter))
        .ok()
        .and_then(|t| oom_kills(&t))
}

impl Monitor {
    pub fn start(events: Arc<dyn Publish>) -> std::io::Result<Arc<Monitor>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let m = Arc::new(Monitor {
            epoll,
            watches: Mutex::new((0, HashMap::new())),
            events,
        });
        let thread = m.clone();
        std::thread::Builder::new()
            .name("oom".into())
            .spawn(move || thread.run())?;
        Ok(m)
    }

    /// Watch the memory cgroup `cgroup` (a `linux.cgroupsPath`) of container `id`.
    pub fn watch(&self, id: &str, cgroup: &str) -> std::io::Result<()> {
        let cgroups = Cgroups::detect().map_err(std::io::Error::other)?;
        let unified = cgroups.mode == Mode::Unified;
        let Some(h) = cgroups.hierarchies.iter().find(|h| {
            if unified {
                h.v2
            } else {
                !h.v2 && h.controllers.iter().any(|c| c == "memory")
            }
        }) else {
            return Ok(());
        };
        let dir = h.mount.join(cgroupfs_path(cgroup).trim_start_matches('/'));
        let (source, counter, fd) = if unified {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
            inotify.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)?;
            let fd = inotify.as_fd().as_raw_fd();
            (Source::V2(inotify), "memory.events", fd)
        } else {
            let efd =
                EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
            let control = File::open(dir.join("memory.oom_control"))?;
            // cgroup-v1/memory.txt, "Memory thresholds" and "OOM control": "<event_fd> <fd of
            // memory.oom_control>" registers the eventfd for OOM notifications.
            OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.event_control"))?
                .write_all(format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()).as_bytes())?;
            let fd = efd.as_fd().as_raw_fd();
            (
                Source::V1 {
                    efd,
                    _control: control,
                },
                "memory.oom_control",
                fd,
            )
        };
        let mut w = Watch {
            id: id.to_string(),
            dir,
            counter,
            seen: 0,
            source,
        };
        w.seen = read_counter(&w).unwrap_or(0);
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        watches.0 += 1;
        let token = watches.0;
        // The descriptor stays open in the map as long as the registration.
        let borrowed = match &w.source {
            Source::V1 { efd, .. } => efd.as_fd(),
            Source::V2(i) => i.as_fd(),
        };
        debug_assert_eq!(borrowed.as_raw_fd(), fd);
        self.epoll
            .add(borrowed, EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        watches.1.insert(token, w);
        Ok(())
    }

    /// Stop watching container `id` (its cgroup is about to go).
    pub fn unwatch(&self, id: &str) {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let tokens: Vec<u64> = watches
            .1
            .iter()
            .filter(|(_, w)| w.id == id)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            if let Some(w) = watches.1.remove(&t) {
                let fd = match &w.source {
                    Source::V1 { efd, .. } => efd.as_fd(),
                    Source::V2(i) => i.as_fd(),
                };
                let _ = self.epoll.delete(fd);
            }
        }
    }

    /// Publish an OOM kill of container `id` that the watch thread has not published yet.
    pub fn catch_up(&self, id: &str) {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        for w in watches.1.values_mut().filter(|w| w.id == id) {
            self.check(w);
        }
    }

    fn check(&self, w: &mut Watch) {
        if let Some(n) = read_counter(w) {
            if n > w.seen {
                w.seen = n;
                let mut e = TaskOOM::new();
                e.container_id = w.id.clone();
                self.events.publish(Event::Oom(e));
            }
        }
    }

    fn run(&self) {
        let mut ready = [EpollEvent::empty(); 8];
        loop {
            let n = match self.epoll.wait(&mut ready, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
            for ev in &ready[..n] {
                if let Some(w) = watches.1.get_mut(&ev.data()) {
                    match &w.source {
                        Source::V1 { efd, .. } => {
                            let _ = efd.read();
                        }
                        Source::V2(i) => {
                            let _ = i.read_events();
                        }
                    }
                    self.check(w);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::oom_kills;

    #[test]
    fn counters_of_both_versions() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            Some(1)
        );
        assert_eq!(oom_kills("under_oom 0\n"), None);
    }
}
