//! The exit thread of [`Tasks`]: every exit the runtime helper reaps, matched to its process,
//! recorded once, and published as `TaskExit` (after a terminal's last output, and after an
//! OOM kill that caused it), then Wait calls are woken.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use podshim_engine::spawner::Spawner;

use super::{ts_now, Exit, Tasks};
use crate::events::Event;

impl Tasks {
    /// The exit thread: every exit the runtime helper reports, handled in order.
    pub fn watch_exits(self: Arc<Self>) {
        let Spawner::Helper(client) = &self.rt.spawner else {
            return;
        };
        while let Some(exit) = client.next_exit() {
            let at = ts_now();
            let pid = exit.pid as u32;
            // A terminal's last output comes before the exit (not holding the lock meanwhile).
            let drained = {
                let mut tasks = self.lock();
                tasks.values_mut().find_map(|t| {
                    std::iter::once(&mut t.init)
                        .chain(t.execs.values_mut())
                        .find(|p| p.pid == pid && p.exit.is_none())
                        .and_then(|p| p.io.take_drained())
                })
            };
            if let Some(rx) = drained {
                let _ = rx.recv_timeout(Duration::from_secs(2));
            }
            self.exited_process(pid, exit.code as u32, at);
        }
    }

    fn exited_process(&self, pid: u32, code: u32, at: Timestamp) {
        let mut tasks = self.lock();
        for (id, task) in tasks.iter_mut() {
            let (exec_id, p) = if task.init.pid == pid && task.init.exit.is_none() {
                (id.clone(), &mut task.init)
            } else if let Some((e, p)) = task
                .execs
                .iter_mut()
                .find(|(_, p)| p.pid == pid && p.exit.is_none())
            {
                (e.clone(), p)
            } else {
                continue;
            };
            p.exit = Some(Exit {
                code,
                at: at.clone(),
            });
            let is_init = exec_id == *id;
            if is_init {
                let _ = task.container.exited(code as i32);
                if let Some(oom) = &self.oom {
                    oom.catch_up(id);
                }
            }
            let mut ev = TaskExit::new();
            ev.container_id = id.clone();
            ev.id = exec_id;
            ev.pid = pid;
            ev.exit_status = code;
            ev.exited_at = MessageField::some(at);
            self.events.publish(Event::Exit(ev));
            break;
        }
        drop(tasks);
        self.exited.notify_all();
    }
}
