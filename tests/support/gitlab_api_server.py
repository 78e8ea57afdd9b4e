"""A loopback double of GitLab's merge request API (the far side of a wire we don't own).

Behaves as GitLab's REST API v4 does for the calls python-gitlab makes here
(GitLab's ``doc/api/merge_requests.md``; routes in ``lib/api/merge_requests.rb``):

- ``GET  /api/v4/projects/:id/merge_requests`` with the filters ``state``
  (``opened``/``closed``/``merged``/``all``), ``source_branch``, ``target_branch``;
  a JSON list;
- ``GET  /api/v4/projects/:id/merge_requests/:iid``: one, or 404 ``{"message": "404 Not found"}``;
- ``POST /api/v4/projects/:id/merge_requests``: 201 with the new merge request;
  when the source branch already has an open one (whatever its target), ``409 {"message": ["Another
  open merge request already exists for this source branch: !N"]}`` (the
  ``validate_branches`` error of ``app/services/merge_requests/create_service.rb``,
  ``MergeRequest#validate_branches`` in ``app/models/merge_request.rb``); a source
  branch absent from the git remote is refused with 422, as GitLab does;
- ``PUT  /api/v4/projects/:id/merge_requests/:iid``: ``title``, ``description``, ``target_branch``,
  ``labels`` (comma-separated or list), ``state_event`` ``close``/``reopen``;
- the token in the ``PRIVATE-TOKEN`` header; a wrong or missing one answers
  ``401 {"message": "401 Unauthorized"}``.
``:id`` is the numeric id or the URL-encoded ``namespace/project`` path. Faults:
``fail_next`` holds statuses answered (``{"message": "..."}``) before the normal
behaviour, one per request. Every request is recorded (method, path, query, body,
headers) for the tests to inspect; ``remote`` is a bare git repository whose
branches the create call checks.
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from support.loopback import LoopbackServer


class GitLabApi(LoopbackServer):
    def __init__(self, token: str, project: str = "eo4eu-faas/faas-deployment", project_id: int = 42,
                 remote: Path | None = None):
        self.token, self.project, self.project_id, self.remote = token, project, project_id, remote
        self.merge_requests: dict[int, dict] = {}
        self.requests: list[dict] = []
        self.fail_next: list[int] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def open(self) -> list[dict]:
        return [mr for mr in self.merge_requests.values() if mr["state"] == "opened"]

    def _branch_exists(self, branch: str) -> bool:
        if self.remote is None:
            return True
        return subprocess.run(["git", "-C", str(self.remote), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
                              capture_output=True).returncode == 0

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not raw:
                    return {}
                if "json" in (self.headers.get("Content-Type") or ""):
                    return json.loads(raw)
                return {k: v[-1] for k, v in parse_qs(raw.decode()).items()}

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                body = self._body() if method in ("POST", "PUT") else {}
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with api._lock:
                    api.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                         "headers": dict(self.headers)})
                    if self.headers.get("PRIVATE-TOKEN") != api.token:
                        return self._send(401, {"message": "401 Unauthorized"})
                    if api.fail_next:
                        status = api.fail_next.pop(0)
                        return self._send(status, {"message": f"{status} injected"})
                    segments = parts.path.split("/")
                    # ['', 'api', 'v4', 'projects', ID, 'merge_requests', (IID)]
                    if segments[:4] != ["", "api", "v4", "projects"] or len(segments) < 6 \
                            or segments[5] != "merge_requests":
                        return self._send(404, {"error": "404 Not Found"})
                    if unquote(segments[4]) not in (api.project, str(api.project_id)):
                        return self._send(404, {"message": "404 Project Not Found"})
                    iid = int(segments[6]) if len(segments) > 6 and segments[6].isdigit() else None
                    return self._dispatch(method, iid, query, body)

            def _dispatch(self, method, iid, query, body):
                mrs = api.merge_requests
                if method == "GET" and iid is None:
                    state = query.get("state", "all")
                    found = [mr for mr in mrs.values()
                             if (state == "all" or mr["state"] == state)
                             and query.get("source_branch", mr["source_branch"]) == mr["source_branch"]
                             and query.get("target_branch", mr["target_branch"]) == mr["target_branch"]]
                    return self._send(200, sorted(found, key=lambda m: -m["iid"]))
                if iid is not None and iid not in mrs:
                    return self._send(404, {"message": "404 Not found"})
                if method == "GET":
                    return self._send(200, mrs[iid])
                if method == "POST" and iid is None:
                    for key in ("source_branch", "target_branch", "title"):
                        if not body.get(key):
                            return self._send(400, {"message": f"{key} is missing"})
                    for mr in mrs.values():
                        if mr["state"] == "opened" and mr["source_branch"] == body["source_branch"]:
                            return self._send(409, {"message": [
                                f"Another open merge request already exists for this source branch: !{mr['iid']}"]})
                    if not api._branch_exists(body["source_branch"]):
                        return self._send(422, {"message": ["Source branch does not exist"]})
                    new = len(mrs) + 1
                    mrs[new] = {
                        "id": 1000 + new, "iid": new, "project_id": api.project_id, "state": "opened",
                        "source_branch": body["source_branch"], "target_branch": body["target_branch"],
                        "title": body["title"], "description": body.get("description", ""),
                        "labels": _labels(body.get("labels")),
                        "web_url": f"https://gitlab.example.org/{api.project}/-/merge_requests/{new}",
                    }
                    return self._send(201, mrs[new])
                if method == "PUT" and iid is not None:
                    mr = mrs[iid]
                    for key in ("title", "description", "target_branch"):
                        if key in body:
                            mr[key] = body[key]
                    if "labels" in body:
                        mr["labels"] = _labels(body["labels"])
                    event = body.get("state_event")
                    if event == "close":
                        mr["state"] = "closed"
                    elif event == "reopen":
                        mr["state"] = "opened"
                    return self._send(200, mr)
                return self._send(405, {"message": "405 Method Not Allowed"})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

        return Handler


def _labels(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v for v in str(value or "").split(",") if v]
