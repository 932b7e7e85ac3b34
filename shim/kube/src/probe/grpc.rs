//! gRPC probes, as the kubelet's `prober/grpc` runs them: one `grpc.health.v1.Health/Check` call
//! (the gRPC Health Checking Protocol) over plaintext HTTP/2 with prior knowledge (h2c) to
//! `PodIP:port`, within the probe's timeout; a success only when the answer is `SERVING`.
//!
//! HTTP/2 is the `h2` crate on a current-thread tokio runtime: this runs in the short-lived
//! `podshim probe` process, never in one that creates containers. The two protobuf messages are
//! one field each, encoded and decoded by hand here.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The method every gRPC probe calls.
const PATH: &str = "/grpc.health.v1.Health/Check";
/// The largest response accepted (gRPC's default receive limit).
const MAX_MESSAGE: usize = 4 << 20;
/// How often a refused connection is retried until the deadline: the kubelet dials with
/// `grpc.WithBlock()`, which keeps trying until its context expires.
const REDIAL: Duration = Duration::from_millis(100);

/// `HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    /// A value this version of the protocol does not name.
    Other(u64),
}

impl ServingStatus {
    fn from_wire(v: u64) -> Self {
        match v {
            0 => ServingStatus::Unknown,
            1 => ServingStatus::Serving,
            2 => ServingStatus::NotServing,
            3 => ServingStatus::ServiceUnknown,
            n => ServingStatus::Other(n),
        }
    }
}

/// The protobuf enum's names (Go's `String()`: the number when it has no name).
impl std::fmt::Display for ServingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServingStatus::Unknown => f.write_str("UNKNOWN"),
            ServingStatus::Serving => f.write_str("SERVING"),
            ServingStatus::NotServing => f.write_str("NOT_SERVING"),
            ServingStatus::ServiceUnknown => f.write_str("SERVICE_UNKNOWN"),
            ServingStatus::Other(n) => write!(f, "{n}"),
        }
    }
}

/// A response body that is not one `HealthCheckResponse` in a gRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("response has no complete grpc message ({0} bytes)")]
    Short(usize),
    #[error("compressed grpc message (no encoding was offered)")]
    Compressed,
    #[error("malformed protobuf message")]
    Protobuf,
}

/// Why a gRPC probe failed; the messages are the kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("start the probe's async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("timeout: failed to connect service \"{addr}\" within {}", go_duration(*timeout))]
    ConnectTimeout {
        addr: SocketAddr,
        timeout: Duration,
        /// The last dial error, if a dial failed rather than hung.
        #[source]
        last: Option<std::io::Error>,
    },
    #[error("error: failed to connect service at \"{addr}\"")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: h2::Error,
    },
    #[error("timeout: health rpc did not complete within {}", go_duration(*timeout))]
    RpcTimeout { timeout: Duration },
    #[error("error: health rpc probe failed")]
    Rpc(#[source] h2::Error),
    #[error(
        "this server does not implement the grpc health protocol (grpc.health.v1.Health): {0}"
    )]
    Unimplemented(String),
    #[error("error: health rpc probe failed: rpc error: code = {} desc = {message}", code_name(*code))]
    Status { code: u32, message: String },
    #[error("error: health rpc probe failed")]
    Decode(#[source] DecodeError),
    #[error("service unhealthy (responded with \"{0}\")")]
    Unhealthy(ServingStatus),
}

/// gRPC status codes by number (`google.golang.org/grpc/codes`, as `code.String()` prints them).
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

const UNIMPLEMENTED: u32 = 12;
const DEADLINE_EXCEEDED: u32 = 4;

/// A duration as Go's `time.Duration.String()` prints the probe timeouts (`1s`, `1.5s`, `500ms`).
fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A varint at the start of `b`: the value and its length.
fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The request body: `HealthCheckRequest{service}` (field 1, a string, left out when empty as
/// proto3 does) in a gRPC message (uncompressed flag, big-endian length, the bytes).
pub fn encode_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

/// The status in a response body: the first gRPC message, a `HealthCheckResponse` whose field 1
/// (a varint) is the status, `UNKNOWN` when absent; other fields are skipped.
pub fn decode_response(body: &[u8]) -> Result<ServingStatus, DecodeError> {
    let short = || DecodeError::Short(body.len());
    let head = body.get(..5).ok_or_else(short)?;
    if head[0] != 0 {
        return Err(DecodeError::Compressed);
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut msg = body.get(5..5 + len).ok_or_else(short)?;
    let mut status = 0;
    while !msg.is_empty() {
        let (key, n) = get_varint(msg).ok_or(DecodeError::Protobuf)?;
        msg = &msg[n..];
        let skip = match key & 7 {
            0 => {
                let (v, n) = get_varint(msg).ok_or(DecodeError::Protobuf)?;
                if key >> 3 == 1 {
                    status = v;
                }
                n
            }
            1 => 8,
            2 => {
                let (l, n) = get_varint(msg).ok_or(DecodeError::Protobuf)?;
                n.checked_add(usize::try_from(l).map_err(|_| DecodeError::Protobuf)?)
                    .ok_or(DecodeError::Protobuf)?
            }
            5 => 4,
            _ => return Err(DecodeError::Protobuf),
        };
        msg = msg.get(skip..).ok_or(DecodeError::Protobuf)?;
    }
    Ok(ServingStatus::from_wire(status))
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC status in `headers` (trailers, or the headers of a trailers-only response): `None`
/// when there is none, else the code and the decoded message.
fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?;
    let code = code.to_str().ok().and_then(|c| c.parse().ok()).unwrap_or(2);
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

fn status_error(code: u32, message: String) -> GrpcError {
    match code {
        UNIMPLEMENTED => GrpcError::Unimplemented(message),
        _ => GrpcError::Status { code, message },
    }
}

/// An HTTP status other than 200 as a gRPC status (grpc-go's `HTTPStatusConvTab`).
fn http_status_error(status: http::StatusCode) -> GrpcError {
    let code = match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => UNIMPLEMENTED,
        429 | 502..=504 => 14,
        _ => 2,
    };
    status_error(
        code,
        format!("unexpected HTTP status code received from server: {status}"),
    )
}

/// Check `service` at `addr` within `timeout`: `Ok` only when it answers `SERVING`.
pub fn check(addr: SocketAddr, service: &str, timeout: Duration) -> Result<(), GrpcError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(GrpcError::Runtime)?;
    let status = rt.block_on(async {
        let deadline = Instant::now() + timeout;
        let client = connect(addr, timeout, deadline).await?;
        tokio::time::timeout_at(deadline, call(client, addr, service, deadline, timeout))
            .await
            .map_err(|_| GrpcError::RpcTimeout { timeout })?
    })?;
    match status {
        ServingStatus::Serving => Ok(()),
        other => Err(GrpcError::Unhealthy(other)),
    }
}

/// Dial `addr` (again after a refusal, until `deadline`) and start an HTTP/2 connection on it.
async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    deadline: Instant,
) -> Result<h2::client::SendRequest<Bytes>, GrpcError> {
    let mut last = None;
    let tcp = loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => break s,
            Ok(Err(e)) => last = Some(e),
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(GrpcError::ConnectTimeout {
                addr,
                timeout,
                last,
            });
        }
        tokio::time::sleep_until(deadline.min(now + REDIAL)).await;
    };
    let _ = tcp.set_nodelay(true);
    let handshake = async {
        let (client, conn) = h2::client::handshake(tcp).await?;
        // The connection task reads and writes frames; it ends with the runtime.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.ready().await
    };
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(r) => r.map_err(|source| GrpcError::Connect { addr, source }),
        Err(_) => Err(GrpcError::ConnectTimeout {
            addr,
            timeout,
            last: None,
        }),
    }
}

/// The Health/Check call on an HTTP/2 connection: the serving status, or why there is none.
async fn call(
    mut client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    service: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<ServingStatus, GrpcError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let req = http::Request::post(format!("http://{addr}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", super::USER_AGENT)
        // The deadline travels with the call, as grpc-go sends it (`m`: milliseconds).
        .header("grpc-timeout", format!("{}m", left.as_millis().max(1)))
        .body(())
        .expect("a valid request");
    let (response, mut send) = client.send_request(req, false).map_err(GrpcError::Rpc)?;
    send.send_data(Bytes::from(encode_request(service)), true)
        .map_err(GrpcError::Rpc)?;
    let (parts, mut body) = response.await.map_err(GrpcError::Rpc)?.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(http_status_error(parts.status));
    }
    // A trailers-only response (an error, usually) carries the status in its headers.
    if let Some((code, message)) = grpc_status(&parts.headers).filter(|(c, _)| *c != 0) {
        return Err(status_error(code, message));
    }
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(GrpcError::Rpc)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
        if data.len() > MAX_MESSAGE + 5 {
            return Err(GrpcError::Status {
                code: 8,
                message: format!("received message larger than max ({MAX_MESSAGE})"),
            });
        }
    }
    let trailers = body.trailers().await.map_err(GrpcError::Rpc)?;
    let status = trailers
        .as_ref()
        .and_then(grpc_status)
        .or_else(|| grpc_status(&parts.headers));
    match status {
        Some((0, _)) => decode_response(&data).map_err(GrpcError::Decode),
        Some((DEADLINE_EXCEEDED, _)) => Err(GrpcError::RpcTimeout { timeout }),
        Some((code, message)) => Err(status_error(code, message)),
        None => Err(GrpcError::Status {
            code: 13,
            message: "server closed the stream without sending trailers".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_encoded() {
        assert_eq!(encode_request(""), [0, 0, 0, 0, 0]);
        assert_eq!(
            encode_request("app"),
            [0, 0, 0, 0, 5, 0x0a, 3, b'a', b'p', b'p']
        );
        // A name longer than 127 bytes has a two-byte length.
        let long = "s".repeat(200);
        let e = encode_request(&long);
        assert_eq!(&e[..8], [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
        assert_eq!(e.len(), 5 + 203);
    }

    #[test]
    fn responses_are_decoded() {
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 2, 0x08, 1]),
            Ok(ServingStatus::Serving)
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 2, 0x08, 2]),
            Ok(ServingStatus::NotServing)
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 2, 0x08, 3]),
            Ok(ServingStatus::ServiceUnknown)
        );
        // The default (UNKNOWN) is left out of the message.
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 0]),
            Ok(ServingStatus::Unknown)
        );
        // Unknown fields of every wire type are skipped.
        let msg = [
            0x12, 2, b'h', b'i', // field 2, bytes
            0x18, 0x96, 0x01, // field 3, varint 150
            0x21, 0, 0, 0, 0, 0, 0, 0, 0, // field 4, fixed64
            0x2d, 0, 0, 0, 0, // field 5, fixed32
            0x08, 1, // the status
        ];
        let mut body = vec![0, 0, 0, 0, msg.len() as u8];
        body.extend_from_slice(&msg);
        assert_eq!(decode_response(&body), Ok(ServingStatus::Serving));
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 2, 0x08, 7]),
            Ok(ServingStatus::Other(7))
        );
        assert_eq!(ServingStatus::Other(7).to_string(), "7");
    }

    #[test]
    fn bad_responses_are_refused() {
        assert_eq!(decode_response(&[]), Err(DecodeError::Short(0)));
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 3, 0x08, 1]),
            Err(DecodeError::Short(7))
        );
        assert_eq!(
            decode_response(&[1, 0, 0, 0, 2, 0x08, 1]),
            Err(DecodeError::Compressed)
        );
        // A truncated varint, a length past the end, wire type 3 (groups).
        for msg in [&[0x08, 0x80][..], &[0x12, 5, b'x'], &[0x0b]] {
            let mut body = vec![0, 0, 0, 0, msg.len() as u8];
            body.extend_from_slice(msg);
            assert_eq!(
                decode_response(&body),
                Err(DecodeError::Protobuf),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn statuses_and_messages_read_like_the_kubelets() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", "12".parse().unwrap());
        h.insert(
            "grpc-message",
            "unknown service grpc.health.v1.Health%21".parse().unwrap(),
        );
        let (code, msg) = grpc_status(&h).unwrap();
        assert_eq!(
            status_error(code, msg).to_string(),
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health!"
        );
        assert_eq!(
            status_error(5, "x".into()).to_string(),
            "error: health rpc probe failed: rpc error: code = NotFound desc = x"
        );
        assert_eq!(
            GrpcError::Unhealthy(ServingStatus::NotServing).to_string(),
            r#"service unhealthy (responded with "NOT_SERVING")"#
        );
        let e = GrpcError::ConnectTimeout {
            addr: "10.0.0.1:9000".parse().unwrap(),
            timeout: Duration::from_secs(1),
            last: None,
        };
        assert_eq!(
            e.to_string(),
            r#"timeout: failed to connect service "10.0.0.1:9000" within 1s"#
        );
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(
            http_status_error(http::StatusCode::NOT_FOUND).to_string(),
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): unexpected HTTP status code received from server: 404 Not Found"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
