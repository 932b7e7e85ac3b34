//! A client of a shim's task service over ttrpc, for either API version: the request and
//! response messages are `containerd-shim-protos`'s (generated from containerd's task v3 proto,
//! which v2 shares field for field); only the service name on the wire differs, so one code path
//! serves both (the crate's generated `TaskClient` is fixed to v3).

use std::time::Duration;

use containerd_shim_protos::api::*;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc;

use super::protocol::TaskApi;

pub struct TaskClient {
    client: ttrpc::Client,
    api: TaskApi,
    /// Per call, as containerd bounds its calls (0 would wait forever).
    pub timeout: Duration,
}

/// A call's failure: the ttrpc status (code and message) when the shim answered one.
#[derive(Debug)]
pub enum CallError {
    Status { code: ttrpc::Code, message: String },
    Other(ttrpc::Error),
}

impl CallError {
    /// The code's name as containerd's errdefs map it back (`NOT_FOUND`, `ALREADY_EXISTS`, ...).
    pub fn code(&self) -> String {
        match self {
            CallError::Status { code, .. } => format!("{code:?}"),
            CallError::Other(e) => format!("not a status: {e}"),
        }
    }
}

impl TaskClient {
    /// Connect to a shim's address (`unix:///run/containerd/s/...`, as its `start` printed).
    pub fn connect(address: &str, api: TaskApi) -> Result<Self, ttrpc::Error> {
        Ok(TaskClient {
            client: ttrpc::Client::connect(address)?,
            api,
            timeout: Duration::from_secs(10),
        })
    }

    /// One unary call of `<service>/<method>`.
    pub fn call<Req: Message, Resp: Message>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, CallError> {
        let mut r = ttrpc::Request::new();
        r.set_service(self.api.service().to_string());
        r.set_method(method.to_string());
        r.set_timeout_nano(self.timeout.as_nanos() as i64);
        r.set_payload(req.write_to_bytes().map_err(|e| {
            CallError::Other(ttrpc::Error::Others(format!("encode {method}: {e}")))
        })?);
        match self.client.request(r) {
            Ok(res) => Resp::parse_from_bytes(&res.payload).map_err(|e| {
                CallError::Other(ttrpc::Error::Others(format!("decode {method}: {e}")))
            }),
            Err(ttrpc::Error::RpcStatus(s)) => Err(CallError::Status {
                code: s.code(),
                message: s.message().to_string(),
            }),
            Err(e) => Err(CallError::Other(e)),
        }
    }

    pub fn create(&self, req: &CreateTaskRequest) -> Result<CreateTaskResponse, CallError> {
        self.call("Create", req)
    }

    pub fn start(&self, id: &str, exec_id: &str) -> Result<StartResponse, CallError> {
        let mut r = StartRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        self.call("Start", &r)
    }

    pub fn state(&self, id: &str, exec_id: &str) -> Result<StateResponse, CallError> {
        let mut r = StateRequest::new();
        r.id = id.into();
        r.exec_id = exec_id.into();
        self.call("State", &r)
    }

    /// Wait for the exit; the call's timeout becomes `timeout`.
    pub fn wait(&mut self, id: &str, timeout: Duration) -> Result<WaitResponse, CallError> {
        let mut r = WaitRequest::new();
        r.id = id.into();
        let saved = std::mem::replace(&mut self.timeout, timeout);
        let res = self.call("Wait", &r);
        self.timeout = saved;
        res
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), CallError> {
        let mut r = KillRequest::new();
        r.id = id.into();
        r.signal = signal;
        r.all = all;
        self.call::<_, Empty>("Kill", &r).map(|_| ())
    }

    pub fn pids(&self, id: &str) -> Result<PidsResponse, CallError> {
        let mut r = PidsRequest::new();
        r.id = id.into();
        self.call("Pids", &r)
    }

    pub fn stats(&self, id: &str) -> Result<StatsResponse, CallError> {
        let mut r = StatsRequest::new();
        r.id = id.into();
        self.call("Stats", &r)
    }

    pub fn delete(&self, id: &str) -> Result<DeleteResponse, CallError> {
        let mut r = DeleteRequest::new();
        r.id = id.into();
        self.call("Delete", &r)
    }

    pub fn connect_info(&self, id: &str) -> Result<ConnectResponse, CallError> {
        let mut r = ConnectRequest::new();
        r.id = id.into();
        self.call("Connect", &r)
    }

    pub fn shutdown(&self, id: &str) -> Result<(), CallError> {
        let mut r = ShutdownRequest::new();
        r.id = id.into();
        r.now = true;
        self.call::<_, Empty>("Shutdown", &r).map(|_| ())
    }
}
