//! The task API (`containerd.task.v2.Task` and `containerd.task.v3.Task`, the same messages):
//! each call translated to [`Tasks`] and back, errors through [`ShimError`]'s one mapping.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use containerd_shim_protos::api::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::ttrpc::{self, TtrpcContext};
use containerd_shim_protos::Task;
use libcontainer::oci_spec::runtime::{LinuxResources, Process as OciProcess};
use podshim_engine::rootfs::MountSpec;

use crate::error::ShimError;
use crate::stdio::IoSpec;
use crate::tasks::{CreateTask, Tasks};

pub struct Service {
    pub tasks: Arc<Tasks>,
    /// Told once the shim should exit (Shutdown with no task left).
    pub shutdown: Mutex<Option<Sender<()>>>,
}

type R<T> = ttrpc::Result<T>;

fn json<T: serde::de::DeserializeOwned>(
    any: &MessageField<Any>,
    what: &str,
) -> Result<T, ShimError> {
    let value = any.as_ref().map(|a| a.value.as_slice()).unwrap_or_default();
    serde_json::from_slice(value).map_err(|e| ShimError::Invalid(format!("{what}: {e}")))
}

impl Task for Service {
    fn state(&self, _: &TtrpcContext, req: StateRequest) -> R<StateResponse> {
        let s = self.tasks.state(&req.id, &req.exec_id)?;
        let mut r = StateResponse::new();
        r.id = req.id;
        r.exec_id = req.exec_id;
        r.bundle = s.bundle.display().to_string();
        r.pid = s.pid;
        r.status = s.status.into();
        r.stdin = s.io.stdin;
        r.stdout = s.io.stdout;
        r.stderr = s.io.stderr;
        r.terminal = s.io.terminal;
        if let Some(e) = s.exit {
            r.exit_status = e.code;
            r.exited_at = MessageField::some(e.at);
        }
        Ok(r)
    }

    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> R<CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(ShimError::NotImplemented("restoring a checkpoint").into());
        }
        let rootfs = req
            .rootfs
            .iter()
            .map(|m| MountSpec {
                kind: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        let pid = self.tasks.create(CreateTask {
            id: req.id.clone(),
            bundle: req.bundle.clone().into(),
            rootfs,
            io: IoSpec {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
            systemd_cgroup: crate::cgpath::systemd_option(req.options.as_ref())?,
        })?;
        let mut r = CreateTaskResponse::new();
        r.pid = pid;
        Ok(r)
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> R<StartResponse> {
        let mut r = StartResponse::new();
        r.pid = self.tasks.start(&req.id, &req.exec_id)?;
        Ok(r)
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> R<DeleteResponse> {
        let (pid, exit) = self.tasks.delete(&req.id, &req.exec_id)?;
        let mut r = DeleteResponse::new();
        r.pid = pid;
        r.exit_status = exit.code;
        r.exited_at = MessageField::some(exit.at);
        Ok(r)
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> R<PidsResponse> {
        let mut r = PidsResponse::new();
        for (pid, exec) in self.tasks.pids(&req.id)? {
            let mut p = ProcessInfo::new();
            p.pid = pid;
            if let Some(exec_id) = exec {
                // As containerd-shim-runc-v2 tells containerd which process is which exec.
                let mut d = ProcessDetails::new();
                d.exec_id = exec_id;
                let mut any = Any::new();
                any.type_url = "containerd.runc.v1.ProcessDetails".into();
                any.value = d.write_to_bytes().unwrap_or_default();
                p.info = MessageField::some(any);
            }
            r.processes.push(p);
        }
        Ok(r)
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> R<Empty> {
        self.tasks.pause(&req.id)?;
        Ok(Empty::new())
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> R<Empty> {
        self.tasks.resume(&req.id)?;
        Ok(Empty::new())
    }

    fn checkpoint(&self, _: &TtrpcContext, _: CheckpointTaskRequest) -> R<Empty> {
        Err(ShimError::NotImplemented("Checkpoint").into())
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> R<Empty> {
        self.tasks
            .kill(&req.id, &req.exec_id, req.signal, req.all)?;
        Ok(Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> R<Empty> {
        let process: OciProcess = json(&req.spec, "the exec's process")?;
        let io = IoSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        self.tasks.exec(&req.id, &req.exec_id, io, process)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> R<Empty> {
        self.tasks
            .resize_pty(&req.id, &req.exec_id, req.width, req.height)?;
        Ok(Empty::new())
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> R<Empty> {
        if req.stdin {
            self.tasks.close_io(&req.id, &req.exec_id)?;
        }
        Ok(Empty::new())
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> R<Empty> {
        let resources: LinuxResources = json(&req.resources, "the resources")?;
        self.tasks.update(&req.id, &resources)?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> R<WaitResponse> {
        let exit = self.tasks.wait(&req.id, &req.exec_id)?;
        let mut r = WaitResponse::new();
        r.exit_status = exit.code;
        r.exited_at = MessageField::some(exit.at);
        Ok(r)
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> R<StatsResponse> {
        let (stats, unified) = self.tasks.stats(&req.id)?;
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(crate::metrics::to_any(&stats, unified));
        Ok(r)
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> R<ConnectResponse> {
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.tasks.init_pid(&req.id);
        r.version = env!("CARGO_PKG_VERSION").to_string();
        Ok(r)
    }

    fn shutdown(&self, _: &TtrpcContext, _: ShutdownRequest) -> R<Empty> {
        // As containerd-shim-runc-v2: a shim serving other containers of the Pod stays.
        if self.tasks.is_empty() {
            if let Some(tx) = self
                .shutdown
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                let _ = tx.send(());
            }
        }
        Ok(Empty::new())
    }
}
