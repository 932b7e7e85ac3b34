//! Task events to containerd, in the order they happened: the service puts them on a queue
//! (behind [`Publish`], so the task logic is testable with a channel), and one thread forwards
//! them to containerd's ttrpc `Events/Forward` at `TTRPC_ADDRESS`. An event that cannot be
//! delivered (containerd restarting) is retried until it is, so none is lost or reordered.
//! Before the shim exits it waits for the queue to drain ([`Forwarder::flush`]): a `Delete`
//! followed at once by `Shutdown` (what `ctr run --rm` does) must not lose the `TaskDelete`.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageFull;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::{ttrpc, EventsClient};

/// One task event and its topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Create(TaskCreate),
    Start(TaskStart),
    Exit(TaskExit),
    Delete(TaskDelete),
    ExecAdded(TaskExecAdded),
    ExecStarted(TaskExecStarted),
    Paused(TaskPaused),
    Resumed(TaskResumed),
    Oom(TaskOOM),
}

impl Event {
    pub fn topic(&self) -> &'static str {
        match self {
            Event::Create(_) => "/tasks/create",
            Event::Start(_) => "/tasks/start",
            Event::Exit(_) => "/tasks/exit",
            Event::Delete(_) => "/tasks/delete",
            Event::ExecAdded(_) => "/tasks/exec-added",
            Event::ExecStarted(_) => "/tasks/exec-started",
            Event::Paused(_) => "/tasks/paused",
            Event::Resumed(_) => "/tasks/resumed",
            Event::Oom(_) => "/tasks/oom",
        }
    }

    /// The event as containerd's typeurl registry names it (`containerd.events.TaskExit`).
    pub fn to_any(&self) -> Any {
        fn any<M: MessageFull>(m: &M) -> Any {
            let mut a = Any::new();
            a.type_url = M::descriptor().full_name().to_string();
            a.value = m.write_to_bytes().unwrap_or_default();
            a
        }
        match self {
            Event::Create(m) => any(m),
            Event::Start(m) => any(m),
            Event::Exit(m) => any(m),
            Event::Delete(m) => any(m),
            Event::ExecAdded(m) => any(m),
            Event::ExecStarted(m) => any(m),
            Event::Paused(m) => any(m),
            Event::Resumed(m) => any(m),
            Event::Oom(m) => any(m),
        }
    }
}

/// Where the service sends its events.
pub trait Publish: Send + Sync {
    fn publish(&self, event: Event);
}

/// A queue forwarded to containerd by a thread of its own.
pub struct Forwarder {
    queue: Mutex<Sender<Event>>,
    /// Events queued and not yet delivered, and the forwarding thread's signal that it
    /// delivered one.
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl Forwarder {
    /// Start the forwarding thread for events of `namespace` to the ttrpc socket `address`.
    pub fn start(address: String, namespace: String) -> Forwarder {
        let (tx, rx) = channel();
        let pending = Arc::new((Mutex::new(0), Condvar::new()));
        let delivered = pending.clone();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                forward(rx, &address, &namespace, || {
                    let (count, cv) = &*delivered;
                    let mut n: std::sync::MutexGuard<usize> =
                        count.lock().unwrap_or_else(|p| p.into_inner());
                    *n = n.saturating_sub(1);
                    cv.notify_all();
                })
            })
            .expect("spawn the events thread");
        Forwarder {
            queue: Mutex::new(tx),
            pending,
        }
    }

    /// Wait until every event published so far was delivered, at most `limit` (containerd may
    /// be gone for good). Returns how many were still undelivered.
    pub fn flush(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let (count, cv) = &*self.pending;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = cv
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *n
    }
}

impl Publish for Forwarder {
    fn publish(&self, event: Event) {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // Counted before it is queued, so a flush never misses it.
        *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if q.send(event).is_err() {
            *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        }
    }
}

fn connect(address: &str) -> Option<EventsClient> {
    let addr = if address.starts_with("unix://") {
        address.to_string()
    } else {
        format!("unix://{address}")
    };
    ttrpc::Client::connect(&addr).ok().map(EventsClient::new)
}

/// Deliver the queued events in order; `delivered` is called after each.
fn forward(rx: Receiver<Event>, address: &str, namespace: &str, delivered: impl Fn()) {
    let mut client = None;
    for event in rx {
        let mut envelope = Envelope::new();
        envelope.timestamp = Some(Timestamp::now()).into();
        envelope.namespace = namespace.to_string();
        envelope.topic = event.topic().to_string();
        envelope.event = Some(event.to_any()).into();
        let mut req = ForwardRequest::new();
        req.envelope = Some(envelope).into();
        let mut delay = Duration::from_millis(20);
        loop {
            if client.is_none() {
                client = connect(address);
            }
            if let Some(c) = &client {
                let ctx = ttrpc::context::with_timeout(Duration::from_secs(5).as_nanos() as i64);
                match c.forward(ctx, &req) {
                    Ok(_) => break,
                    Err(e) => {
                        crate::log(&format!("publish {}: {e}", req.envelope.topic));
                        client = None;
                    }
                }
            }
            // containerd is (re)starting: keep the event and its successors until it is back.
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        delivered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_containerd_type_names() {
        let mut e = TaskExit::new();
        e.container_id = "c".into();
        e.exit_status = 137;
        let ev = Event::Exit(e);
        assert_eq!(ev.topic(), "/tasks/exit");
        let any = ev.to_any();
        assert_eq!(any.type_url, "containerd.events.TaskExit");
        assert_eq!(
            Event::Oom(TaskOOM::new()).to_any().type_url,
            "containerd.events.TaskOOM"
        );
    }

    /// containerd's events service, slow to take each event (a loaded host).
    struct SlowEvents(Arc<Mutex<Vec<String>>>);

    impl containerd_shim_protos::Events for SlowEvents {
        fn forward(
            &self,
            _: &ttrpc::TtrpcContext,
            req: ForwardRequest,
        ) -> ttrpc::Result<containerd_shim_protos::protobuf::well_known_types::empty::Empty>
        {
            std::thread::sleep(Duration::from_millis(150));
            self.0.lock().unwrap().push(req.envelope.topic.clone());
            Ok(Default::default())
        }
    }

    #[test]
    fn flush_waits_until_containerd_took_every_event() {
        let dir = std::env::temp_dir().join(format!("podshim-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = format!("unix://{}", dir.join("events.sock").display());
        let got = Arc::new(Mutex::new(Vec::new()));
        let service: Arc<dyn containerd_shim_protos::Events + Send + Sync> =
            Arc::new(SlowEvents(got.clone()));
        let mut server = ttrpc::Server::new()
            .bind(&socket)
            .unwrap()
            .register_service(containerd_shim_protos::create_events(service));
        server.start().unwrap();
        let f = Forwarder::start(socket, "default".into());
        assert_eq!(f.flush(Duration::from_millis(10)), 0, "nothing published");
        f.publish(Event::Exit(TaskExit::new()));
        f.publish(Event::Delete(TaskDelete::new()));
        assert_eq!(f.flush(Duration::from_secs(10)), 0);
        assert_eq!(*got.lock().unwrap(), ["/tasks/exit", "/tasks/delete"]);
        server.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flush_gives_up_when_containerd_is_gone() {
        let f = Forwarder::start("unix:///nonexistent/podshim-events.sock".into(), "d".into());
        f.publish(Event::Delete(TaskDelete::new()));
        let t = Instant::now();
        assert_eq!(f.flush(Duration::from_millis(200)), 1);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
