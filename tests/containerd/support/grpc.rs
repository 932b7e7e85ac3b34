//! gRPC to a test containerd: a tonic channel over its unix socket, and the one call of
//! containerd's own task service the tests need and `ctr` 1.6 lacks: `Tasks/Update` (what
//! `ctr task update` does in later releases), with messages declared here for prost.

use std::collections::HashMap;
use std::path::Path;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// A channel to the gRPC server on a unix socket, on `rt`.
pub fn connect(rt: &tokio::runtime::Runtime, socket: &Path) -> Channel {
    let path = socket.to_path_buf();
    rt.block_on(
        // The URI is not used: every connection goes to the unix socket.
        Endpoint::from_static("http://[::]:0").connect_with_connector(tower::service_fn(
            move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            },
        )),
    )
    .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// google.protobuf.Any.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// containerd.services.tasks.v1.UpdateTaskRequest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateTaskRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(message, optional, tag = "2")]
    pub resources: Option<Any>,
    #[prost(map = "string, string", tag = "3")]
    pub annotations: HashMap<String, String>,
}

/// The type URL containerd registers for the OCI spec's `LinuxResources`, whose value it
/// encodes as JSON (typeurl's encoding of non-protobuf types).
pub const LINUX_RESOURCES: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// `Tasks/Update` of a task in `namespace` with OCI `LinuxResources` (JSON).
pub fn update_task(
    socket: &Path,
    namespace: &str,
    id: &str,
    resources: &serde_json::Value,
) -> Result<(), tonic::Status> {
    let rt = runtime();
    let channel = connect(&rt, socket);
    let request = UpdateTaskRequest {
        container_id: id.to_string(),
        resources: Some(Any {
            type_url: LINUX_RESOURCES.to_string(),
            value: serde_json::to_vec(resources).unwrap(),
        }),
        annotations: HashMap::new(),
    };
    rt.block_on(async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut req = tonic::Request::new(request);
        // containerd takes the namespace from this metadata key.
        req.metadata_mut()
            .insert("containerd-namespace", namespace.parse().unwrap());
        let path =
            http::uri::PathAndQuery::from_static("/containerd.services.tasks.v1.Tasks/Update");
        grpc.unary(
            req,
            path,
            tonic_prost::ProstCodec::<UpdateTaskRequest, ()>::default(),
        )
        .await
        .map(|_| ())
    })
}
