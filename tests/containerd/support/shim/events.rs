//! containerd's side of shim events: a ttrpc server at the address a shim is given as
//! `TTRPC_ADDRESS`, serving `containerd.services.events.ttrpc.v1.Events/Forward`, that keeps every
//! envelope in arrival order so a test can check the topics and their order.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskStart};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::{create_events, ttrpc, Events};

/// One forwarded event.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub namespace: String,
    pub topic: String,
    pub event: Any,
}

impl Envelope {
    /// The container id the event is about, for the task events a shim publishes.
    pub fn container_id(&self) -> Option<String> {
        let v = &self.event.value;
        match self.topic.as_str() {
            "/tasks/create" => TaskCreate::parse_from_bytes(v).ok().map(|e| e.container_id),
            "/tasks/start" => TaskStart::parse_from_bytes(v).ok().map(|e| e.container_id),
            "/tasks/exit" => TaskExit::parse_from_bytes(v).ok().map(|e| e.container_id),
            "/tasks/delete" => TaskDelete::parse_from_bytes(v).ok().map(|e| e.container_id),
            _ => None,
        }
    }
}

struct Collector(Arc<Mutex<Vec<Envelope>>>);

impl Events for Collector {
    fn forward(&self, _ctx: &ttrpc::TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let e = req.envelope.into_option().unwrap_or_default();
        self.0.lock().unwrap().push(Envelope {
            namespace: e.namespace,
            topic: e.topic,
            event: e.event.into_option().unwrap_or_default(),
        });
        Ok(Empty::new())
    }
}

pub struct EventSink {
    server: Option<ttrpc::Server>,
    pub path: PathBuf,
    received: Arc<Mutex<Vec<Envelope>>>,
}

impl EventSink {
    /// Listen at `path` (a plain socket path, as containerd's ttrpc address is).
    pub fn serve(path: &Path) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let service = create_events(Arc::new(Collector(received.clone())));
        let mut server = ttrpc::Server::new()
            .bind(&format!("unix://{}", path.display()))
            .expect("bind the events socket")
            .register_service(service);
        server.start().expect("start the events server");
        EventSink {
            server: Some(server),
            path: path.to_path_buf(),
            received,
        }
    }

    pub fn events(&self) -> Vec<Envelope> {
        self.received.lock().unwrap().clone()
    }

    /// The topics received so far about container `id`, in order.
    pub fn topics_of(&self, id: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.container_id().as_deref() == Some(id))
            .map(|e| e.topic)
            .collect()
    }

    /// Wait until `topic` arrived for container `id`.
    pub fn wait_for(&self, id: &str, topic: &str, timeout: Duration) {
        super::super::wait_until(timeout, &format!("event {topic} of {id}"), || {
            self.topics_of(id).iter().any(|t| t == topic).then_some(())
        });
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
