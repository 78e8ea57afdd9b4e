"""Git's own smart HTTP server (``git http-backend``, a CGI program) on 127.0.0.1, behind HTTP Basic auth.

What a GitLab remote does for ``git push`` over HTTPS with a token: any user name,
the token as the password; a missing or wrong one answers ``401`` with
``WWW-Authenticate: Basic realm="GitLab"``. Behind the check, the real
``git http-backend`` serves the bare repositories under ``root`` (receive-pack is
enabled because ``REMOTE_USER`` is set, as git's ``http-backend`` documentation
says). Every request's path and query and Authorization header are recorded.
"""

from __future__ import annotations

import base64
import os
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from support.loopback import LoopbackServer


class GitHttpServer(LoopbackServer):
    def __init__(self, root: Path, token: str | None):
        """``token``: the password every request must carry; ``None``: a public remote (anonymous reads)."""
        self.root, self.token = Path(root), token
        self.requests: list[dict] = []
        super().__init__(self._handler())

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                server.requests.append({"method": method, "path": parts.path, "query": parts.query, "auth": auth})
                user = "anonymous" if server.token is None else _basic_user(auth, server.token)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if user is None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="GitLab"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                env = {
                    "PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": parts.path, "QUERY_STRING": parts.query, "REQUEST_METHOD": method,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": user, "REMOTE_ADDR": "127.0.0.1",
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
                }
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                                     check=True).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.decode().split("\r\n"):
                    name, _, value = line.partition(": ")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        return Handler


def _basic_user(header: str, token: str) -> str | None:
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user if user and password == token else None
