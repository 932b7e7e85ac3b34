"""The token service of the registry tests' token-auth registry (distribution's "token"
auth: https://distribution.github.io/distribution/spec/auth/token/), stdlib only.

Usage: token_server.py PORT KEY CERT USER PASSWORD ISSUER LOG

GET /token?service=S&scope=repository:NAME:ACTIONS (repeatable) with HTTP basic credentials
answers {"token": JWT, "access_token": JWT, "expires_in": 300, "issued_at": ...}: an RS256 JWT
signed with KEY (by `openssl dgst`, so no Python crypto package is needed) whose header carries
CERT as its `x5c` chain. Distribution 2.8 (registry/auth/token/token.go) verifies `x5c[0]`
against its `rootcertbundle`, then the signature with that certificate's key; it requires `iss`
to be its configured issuer, `aud` its service, `exp`/`nbf` within 60 s of leeway, and grants
what the `access` claim lists. Wrong or missing credentials get 401. Every request is appended
to LOG as one JSON line {"user", "scope", "service", "granted"} for the tests to check.
"""

import base64
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT, KEY, CERT, USER, PASSWORD, ISSUER, LOG = sys.argv[1:8]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der_b64():
    pem = open(CERT).read()
    body = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    return "".join(body.split())


X5C = cert_der_b64()


def sign(signing_input):
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", KEY],
        input=signing_input,
        capture_output=True,
        check=True,
    )
    return out.stdout


def jwt(service, subject, access):
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [X5C]}
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": "%d-%d" % (now, time.monotonic_ns()),
        "access": access,
    }
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    ).encode()
    return signing_input.decode() + "." + b64url(sign(signing_input))


def parse_scope(scope):
    # repository:NAME:ACTIONS; NAME may hold a port-less path but never a colon here.
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            return
        query = parse_qs(url.query)
        scopes = query.get("scope", [])
        service = query.get("service", [""])[0]
        user, password = None, None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                pass
        granted = user == USER and password == PASSWORD
        with open(LOG, "a") as log:
            for scope in scopes or [""]:
                entry = {"user": user, "scope": scope, "service": service, "granted": granted}
                log.write(json.dumps(entry) + "\n")
        if not granted:
            self.reply(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]},
                {"WWW-Authenticate": 'Basic realm="podshim-test-token"'},
            )
            return
        token = jwt(service, user, [parse_scope(s) for s in scopes])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.reply(
            200,
            {"token": token, "access_token": token, "expires_in": 300, "issued_at": now},
        )


ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
