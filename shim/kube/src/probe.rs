//! Probes and lifecycle hooks: what a container's `livenessProbe`, `readinessProbe`,
//! `startupProbe`, `postStart` and `preStop` ask for, resolved at plan time (named ports looked
//! up), and the network checks themselves. The supervisor runs every check in a child process
//! (`podshim probe`, or `podshim exec` for an `exec` action) so that its loop never blocks and
//! stays single-threaded; the child's exit status is the result.
//!
//! As the kubelet does: httpGet and tcpSocket go from the host to the Pod IP (or `host`), an
//! HTTP status from 200 to 399 is a success, grpc calls the gRPC health service at the Pod IP
//! and succeeds on `SERVING` (see `grpc`), `exec` runs in the container and succeeds with exit
//! code 0.

pub mod grpc;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::types::{Container, HTTPGetAction, IntOrString, LifecycleHandler, Probe};

/// What a probe or hook does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        /// `host`, else the Pod IP (filled in when the check runs).
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: Option<String>,
        port: u16,
    },
    /// Probes only: `grpc.health.v1.Health/Check` of `service` ("" for the whole server) at the
    /// Pod IP.
    Grpc {
        port: u16,
        service: String,
    },
    /// Hooks only: wait this long.
    Sleep {
        seconds: u64,
    },
}

/// One probe with its timings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbePlan {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds` (liveness and startup kills).
    pub termination_grace: Option<Duration>,
}

/// A container's probes and hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    pub startup: Option<ProbePlan>,
    pub liveness: Option<ProbePlan>,
    pub readiness: Option<ProbePlan>,
    pub post_start: Option<Action>,
    pub pre_stop: Option<Action>,
}

/// A port given by number or by the name of one of the container's ports.
fn port(c: &Container, p: &IntOrString, field: &str) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("{field}: invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| {
                format!("{field}: Invalid value: {name:?}: no container port of this name")
            }),
    }
}

fn http(c: &Container, g: &HTTPGetAction, field: &str) -> Result<Action, String> {
    Ok(Action::HttpGet {
        host: g.host.clone().filter(|h| !h.is_empty()),
        port: port(c, &g.port, &format!("{field}.httpGet.port"))?,
        path: g.path.clone().unwrap_or_else(|| "/".into()),
        headers: g
            .http_headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

fn probe_action(c: &Container, p: &Probe, field: &str) -> Result<Action, String> {
    if let Some(e) = &p.exec {
        return Ok(Action::Exec {
            command: e.command.clone(),
        });
    }
    if let Some(g) = &p.http_get {
        return http(c, g, field);
    }
    if let Some(t) = &p.tcp_socket {
        return Ok(Action::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port: port(c, &t.port, &format!("{field}.tcpSocket.port"))?,
        });
    }
    if let Some(g) = &p.grpc {
        return Ok(Action::Grpc {
            port: port(c, &IntOrString::Int(g.port), &format!("{field}.grpc.port"))?,
            service: g.service.clone().unwrap_or_default(),
        });
    }
    Err(format!("{field}: must specify a handler type"))
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

fn probe(c: &Container, p: &Option<Probe>, field: &str) -> Result<Option<ProbePlan>, String> {
    let Some(p) = p else { return Ok(None) };
    Ok(Some(ProbePlan {
        action: probe_action(c, p, field)?,
        initial_delay: secs(p.initial_delay_seconds, 0),
        // The kubelet's minimum period and timeout are 1 s.
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        termination_grace: p
            .termination_grace_period_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64)),
    }))
}

fn hook(
    c: &Container,
    h: &Option<LifecycleHandler>,
    field: &str,
) -> Result<Option<Action>, String> {
    let Some(h) = h else { return Ok(None) };
    if let Some(e) = &h.exec {
        return Ok(Some(Action::Exec {
            command: e.command.clone(),
        }));
    }
    if let Some(g) = &h.http_get {
        return Ok(Some(http(c, g, field)?));
    }
    if let Some(s) = &h.sleep {
        return Ok(Some(Action::Sleep {
            seconds: s.seconds.max(0) as u64,
        }));
    }
    Err(format!("{field}: must specify a handler type"))
}

/// The probes and hooks of container `c` (at `path`, e.g. `spec.containers[0]`).
pub fn checks(c: &Container, path: &str) -> Result<Checks, String> {
    let lifecycle = c.lifecycle.clone().unwrap_or_default();
    Ok(Checks {
        startup: probe(c, &c.startup_probe, &format!("{path}.startupProbe"))?,
        liveness: probe(c, &c.liveness_probe, &format!("{path}.livenessProbe"))?,
        readiness: probe(c, &c.readiness_probe, &format!("{path}.readinessProbe"))?,
        post_start: hook(
            c,
            &lifecycle.post_start,
            &format!("{path}.lifecycle.postStart"),
        )?,
        pre_stop: hook(c, &lifecycle.pre_stop, &format!("{path}.lifecycle.preStop"))?,
    })
}

/// The kubelet's probe User-Agent.
pub(crate) const USER_AGENT: &str = "kube-probe/1.31";

/// An error with its sources, `: `-separated (how the kubelet's probe messages read).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Run a network check (httpGet, tcpSocket or grpc) against `pod_ip` within `timeout`: `Ok` is a
/// success, `Err` says why it failed.
pub fn check(action: &Action, pod_ip: IpAddr, timeout: Duration) -> Result<String, String> {
    let addr = |host: &Option<String>, port: u16| -> Result<SocketAddr, String> {
        let ip = match host {
            Some(h) => h
                .parse::<IpAddr>()
                .map_err(|_| format!("host {h:?} is not an IP address"))?,
            None => pod_ip,
        };
        Ok(SocketAddr::new(ip, port))
    };
    match action {
        Action::TcpSocket { host, port } => {
            let a = addr(host, *port)?;
            TcpStream::connect_timeout(&a, timeout).map_err(|e| format!("dial tcp {a}: {e}"))?;
            Ok(format!("connected to {a}"))
        }
        Action::HttpGet {
            host,
            port,
            path,
            headers,
        } => {
            let a = addr(host, *port)?;
            let mut s = TcpStream::connect_timeout(&a, timeout)
                .map_err(|e| format!("Get \"http://{a}{path}\": dial tcp {a}: {e}"))?;
            s.set_read_timeout(Some(timeout)).ok();
            s.set_write_timeout(Some(timeout)).ok();
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n");
            let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
            if !has("User-Agent") {
                req.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
            }
            if !has("Accept") {
                req.push_str("Accept: */*\r\n");
            }
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes())
                .map_err(|e| format!("Get \"http://{a}{path}\": {e}"))?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(2).any(|w| w == b"\r\n") {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(format!("Get \"http://{a}{path}\": {e}")),
                }
                if head.len() > 64 * 1024 {
                    break;
                }
            }
            let line = String::from_utf8_lossy(&head);
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("Get \"http://{a}{path}\": malformed HTTP response"))?;
            if (200..400).contains(&code) {
                Ok(format!("HTTP probe succeeded with statuscode: {code}"))
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Action::Grpc { port, service } => {
            grpc::check(SocketAddr::new(pod_ip, *port), service, timeout).map_err(|e| chain(&e))?;
            Ok("service is healthy".to_string())
        }
        Action::Exec { .. } | Action::Sleep { .. } => Err("not a network check".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(status: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = vec![0u8; 4096];
            let n = c.read(&mut req).unwrap();
            c.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .unwrap();
            String::from_utf8_lossy(&req[..n]).to_string()
        });
        (port, h)
    }

    #[test]
    fn http_status_decides() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Duration::from_secs(2);
        let (port, h) = serve("200 OK");
        let get = Action::HttpGet {
            host: None,
            port,
            path: "/healthz".into(),
            headers: vec![("X-Probe".into(), "yes".into())],
        };
        assert!(check(&get, lo, t).is_ok());
        let req = h.join().unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("User-Agent: kube-probe/"), "{req}");
        assert!(req.contains("X-Probe: yes"), "{req}");
        let (port, h) = serve("503 Service Unavailable");
        let get = Action::HttpGet {
            host: None,
            port,
            path: "/".into(),
            headers: vec![],
        };
        let err = check(&get, lo, t).unwrap_err();
        assert_eq!(err, "HTTP probe failed with statuscode: 503");
        h.join().unwrap();
        // Nothing listening.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(check(&Action::TcpSocket { host: None, port }, lo, t).is_err());
    }

    #[test]
    fn grpc_probes_are_planned() {
        let m = crate::manifest::parse(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    livenessProbe: {grpc: {port: 9000}}\n    readinessProbe: {grpc: {port: 9001, service: app}, timeoutSeconds: 2}\n",
        )
        .unwrap();
        let c = &m.pods[0].spec.containers[0];
        let ch = checks(c, "spec.containers[0]").unwrap();
        assert_eq!(
            ch.liveness.unwrap().action,
            Action::Grpc {
                port: 9000,
                service: String::new()
            }
        );
        let r = ch.readiness.unwrap();
        assert_eq!(
            r.action,
            Action::Grpc {
                port: 9001,
                service: "app".into()
            }
        );
        assert_eq!(r.timeout, Duration::from_secs(2));
        // What the supervisor hands `podshim probe`.
        let json = serde_json::to_string(&r.action).unwrap();
        assert_eq!(json, r#"{"grpc":{"port":9001,"service":"app"}}"#);
    }

    /// An h2c Health server on 127.0.0.1 answering `answer` (the gRPC status, the serving
    /// status) to each of `calls` calls; the services asked for come back from the thread.
    fn grpc_server(
        answer: (u32, u8),
        calls: usize,
    ) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let h = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                let mut asked = Vec::new();
                for _ in 0..calls {
                    let (s, _) = l.accept().await.unwrap();
                    let mut conn = h2::server::handshake(s).await.unwrap();
                    let (req, mut respond) = conn.accept().await.unwrap().unwrap();
                    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                    assert_eq!(req.headers()["content-type"], "application/grpc");
                    assert_eq!(req.headers()["te"], "trailers");
                    let mut body = req.into_body();
                    let mut got = Vec::new();
                    while let Some(d) = body.data().await {
                        got.extend_from_slice(&d.unwrap());
                    }
                    asked.push(got);
                    let resp = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    let mut send = respond.send_response(resp, false).unwrap();
                    let (code, serving) = answer;
                    if code == 0 {
                        let msg = vec![0, 0, 0, 0, 2, 0x08, serving];
                        send.send_data(bytes::Bytes::from(msg), false).unwrap();
                    }
                    let mut tr = http::HeaderMap::new();
                    tr.insert("grpc-status", code.to_string().parse().unwrap());
                    tr.insert("grpc-message", "no%20such%20service".parse().unwrap());
                    send.send_trailers(tr).unwrap();
                    // Let the client read it all before the connection goes.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while conn.accept().await.is_some() {}
                    })
                    .await;
                }
                asked
            })
        });
        (port, h)
    }

    #[test]
    fn grpc_checks_need_serving() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Duration::from_secs(2);
        let grpc = |port, service: &str| Action::Grpc {
            port,
            service: service.into(),
        };
        let (port, h) = grpc_server((0, 1), 1);
        assert_eq!(
            check(&grpc(port, "app"), lo, t),
            Ok("service is healthy".into())
        );
        assert_eq!(h.join().unwrap(), [grpc::encode_request("app")]);
        let (port, h) = grpc_server((0, 2), 2);
        assert_eq!(
            check(&grpc(port, ""), lo, t),
            Err(r#"service unhealthy (responded with "NOT_SERVING")"#.into())
        );
        assert_eq!(
            check(&grpc(port, ""), lo, t),
            Err(r#"service unhealthy (responded with "NOT_SERVING")"#.into())
        );
        assert_eq!(h.join().unwrap(), [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]);
        let (port, h) = grpc_server((5, 0), 1);
        assert_eq!(
            check(&grpc(port, "x"), lo, t),
            Err(
                "error: health rpc probe failed: rpc error: code = NotFound desc = no such service"
                    .into()
            )
        );
        h.join().unwrap();
        // Nothing listening: refused until the timeout, as grpc-go's blocking dial.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let t0 = std::time::Instant::now();
        let err = check(&grpc(port, ""), lo, Duration::from_millis(500)).unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(500));
        assert!(
            err.starts_with(&format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 500ms: "
            )),
            "{err}"
        );
        assert!(err.contains("refused"), "{err}");
    }
}
