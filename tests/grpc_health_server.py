#!/usr/bin/env python3
"""A gRPC health server (grpc.health.v1.Health/Check over h2c) for podshim's probe tests.

usage: grpc_health_server.py PORT STATUS_DIR

Every call reads the status of its service from STATUS_DIR/<service> (STATUS_DIR/default for
the server as a whole, service ""): SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN is sent as
that HealthCheckResponse status; without a file the call fails with grpc-status NOT_FOUND (5), as
grpc-go's health server answers for an unknown service. Each call's service name is appended to
STATUS_DIR/calls, one a line. Built on Debian's python3-h2 (the HTTP/2 state machine); the two protobuf messages are
one field each, handled here by hand.
"""

import os
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

STATUSES = {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2, "SERVICE_UNKNOWN": 3}


def service_of(body):
    """The service of a HealthCheckRequest in a gRPC message ("" when absent)."""
    msg = body[5:]
    if len(msg) < 2 or msg[0] != 0x0A:
        return ""
    # Names under 128 bytes: a one-byte length.
    return msg[2 : 2 + msg[1]].decode()


def answer(conn, stream_id, body, status_dir):
    service = service_of(body)
    with open(os.path.join(status_dir, "calls"), "a") as f:
        f.write(service + "\n")
    headers = [(":status", "200"), ("content-type", "application/grpc")]
    try:
        with open(os.path.join(status_dir, service or "default")) as f:
            status = STATUSES[f.read().strip()]
    except FileNotFoundError:
        # Trailers-only: the status in the only HEADERS frame.
        headers += [("grpc-status", "5"), ("grpc-message", "unknown%20service")]
        conn.send_headers(stream_id, headers, end_stream=True)
        return
    conn.send_headers(stream_id, headers)
    conn.send_data(stream_id, bytes([0, 0, 0, 0, 2, 0x08, status]))
    conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)


def serve(sock, status_dir):
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    bodies = {}
    with sock:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    bodies[ev.stream_id] = b""
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    answer(conn, ev.stream_id, bodies.pop(ev.stream_id), status_dir)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())


def main():
    port, status_dir = int(sys.argv[1]), sys.argv[2]
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(16)
    print("listening", flush=True)
    while True:
        sock, _ = lsock.accept()
        threading.Thread(target=serve, args=(sock, status_dir), daemon=True).start()


if __name__ == "__main__":
    main()
