"""Loopback imitation of the part of the Hugging Face Hub HTTP API used for downloads.

Tests must never reach huggingface.co, but they should still exercise the real
``huggingface_hub`` client (cache layout, refs, ETags, offline fallback, error
mapping).  ``LoopbackHub`` serves, on 127.0.0.1 and an ephemeral port, just what
``hf_hub_download`` and ``snapshot_download`` (huggingface_hub 2.4) ask for:

* ``HEAD|GET /{org}/{name}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``,
  a quoted ``ETag`` (git blob sha1 for small text files; sha256 for "LFS" files,
  which also get ``X-Linked-Etag``/``X-Linked-Size``) and ``Content-Length``.
  Single ``Range`` requests (resumed downloads) answer 206.  LFS files are served
  directly (no redirect to a CDN), so no redirect handling is exercised.
* ``GET /api/models/{org}/{name}[/revision/{rev}]``: ``{"id", "sha", "siblings"}``.
* ``GET /api/models/{org}/{name}/tree/{rev}[/{path}]?recursive=...``: one page
  of ``{"type", "path", "size", "oid"[, "lfs"]}`` entries (no pagination).
* Errors as the client maps them: ``X-Error-Code`` ``RepoNotFound`` (401, what an
  anonymous client sees), ``RevisionNotFound`` (404), ``EntryNotFound`` (404,
  with ``X-Repo-Commit``).  Any other path answers a 404 JSON body.

``rev`` is a branch, a tag or a full 40-hex commit id, URL-quoted as the client
sends it.  Only model repos with ``org/name`` ids are modelled; no auth, no xet,
no uploads.  ``point_client_at`` points an imported ``huggingface_hub`` at a
server (and at a private cache) for the duration of one pytest test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".npz", ".npy", ".h5", ".msgpack")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _File:
    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data
        self.lfs = path.endswith(LFS_SUFFIXES)
        self.sha256 = hashlib.sha256(data).hexdigest()
        if self.lfs:  # git stores a pointer file; the Hub reports its blob id and size
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(data)}\n"
            self.pointer_size, self.oid = len(pointer), _git_blob_sha1(pointer.encode())
        else:
            self.pointer_size, self.oid = None, _git_blob_sha1(data)

    def tree_entry(self) -> dict:
        entry = {"type": "file", "path": self.path, "size": len(self.data), "oid": self.oid}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": self.pointer_size}
        return entry


class LoopbackHub:
    """A threaded HTTP server on 127.0.0.1 holding in-memory repos, commits, branches and tags."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, dict] = {}  # repo_id -> {"commits": {sha: {path: _File}}, "refs": {name: sha}}
        self._counter = 0
        self._failures: list[int] = []
        self.requests: list[tuple[str, str]] = []  # (method, path as sent, without query), appended under a lock
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="LoopbackHub", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackHub:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_commit(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", tag: str | None = None) -> str:
        """Record a commit whose tree is exactly ``files``; move ``branch`` (and set ``tag``) to it."""
        with self._lock:
            self._counter += 1
            digest = hashlib.sha1(f"{repo_id}\0{self._counter}\0".encode())
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
            sha = digest.hexdigest()
            repo = self._repos.setdefault(repo_id, {"commits": {}, "refs": {}})
            repo["commits"][sha] = {p: _File(p, bytes(d)) for p, d in files.items()}
            repo["refs"][branch] = sha
            if tag is not None:
                repo["refs"][tag] = sha
            return sha

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with a bare ``status`` error (simulates Hub downtime)."""
        with self._lock:
            self._failures.extend([status] * n)

    # -- request handling (called from server threads) --------------------------------

    def _lookup(self, h, method: str, repo_id: str, rev: str):
        """-> (commit_sha, files), or None after answering the Hub's error for an unknown repo/revision."""
        with self._lock:
            repo = self._repos.get(repo_id)
            sha = None if repo is None else rev if rev in repo["commits"] else repo["refs"].get(rev)
        if sha is None:
            code = "RepoNotFound" if repo is None else "RevisionNotFound"
            return self._not_found(h, method, code, f"{code}: {repo_id}@{rev}")
        return sha, repo["commits"][sha]

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(h.path)
        with self._lock:
            self.requests.append((method, split.path))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _reply(h, method, failure, {"error": "injected failure"})
        parts = split.path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, method, "/".join(parts[:2]), unquote(parts[3]), unquote("/".join(parts[4:])))
        if method == "GET" and len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            if not rest or (len(rest) == 2 and rest[0] == "revision"):
                return self._info(h, repo_id, unquote(rest[1]) if rest else "main")
            if len(rest) in (2, 3) and rest[0] == "tree":
                query = {k: v[-1].lower() for k, v in parse_qs(split.query).items()}
                prefix = unquote(rest[2]).strip("/") if len(rest) == 3 else ""
                return self._tree(h, repo_id, unquote(rest[1]), prefix, query.get("recursive") in ("1", "true"))
        _reply(h, method, 404, {"error": f"Not imitated by LoopbackHub: {method} {split.path}"})

    def _not_found(self, h, method, code: str, what: str, headers: dict | None = None) -> None:
        status = 401 if code == "RepoNotFound" else 404
        _reply(h, method, status, {"error": what}, {"X-Error-Code": code, "X-Error-Message": what, **(headers or {})})

    def _resolve(self, h, method: str, repo_id: str, rev: str, path: str) -> None:
        if (found := self._lookup(h, method, repo_id, rev)) is None:
            return
        sha, files = found
        f = files.get(path)
        if f is None:
            return self._not_found(h, method, "EntryNotFound", f"{path} not in {repo_id}@{sha}", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if f.lfs:
            etag = f'"{f.sha256}"'
            headers.update({"ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(len(f.data))})
        else:
            headers["ETag"] = f'"{f.oid}"'
        body, status, size = f.data, 200, len(f.data)
        match = _RANGE_RE.fullmatch(h.headers.get("Range", "").strip())
        if match and (match.group(1) or match.group(2)):
            start, end = match.groups()
            if start:
                first, last = int(start), min(int(end) if end else size - 1, size - 1)
            else:  # suffix range: the last N bytes
                first, last = max(size - int(end), 0), size - 1
            if first >= size or first > last:
                headers["Content-Range"] = f"bytes */{size}"
                return _reply(h, method, 416, {"error": "Range Not Satisfiable"}, headers)
            body, status = f.data[first : last + 1], 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        _send(h, method, status, body, headers)

    def _info(self, h, repo_id: str, rev: str) -> None:
        if (found := self._lookup(h, "GET", repo_id, rev)) is None:
            return
        sha, files = found
        siblings = [{"rfilename": p} for p in sorted(files)]
        _reply(h, "GET", 200, {"id": repo_id, "sha": sha, "siblings": siblings})

    def _tree(self, h, repo_id: str, rev: str, prefix: str, recursive: bool) -> None:
        if (found := self._lookup(h, "GET", repo_id, rev)) is None:
            return
        sha, files = found
        base = prefix + "/" if prefix else ""
        entries: dict[str, dict] = {}
        for path in sorted(files):
            if not path.startswith(base):
                continue
            parts = path[len(base) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):  # folders on the way
                folder = base + "/".join(parts[:i])
                entries.setdefault(folder, {"type": "directory", "path": folder, "size": 0,
                                            "oid": hashlib.sha1(f"tree {sha} {folder}".encode()).hexdigest()})
            if recursive or len(parts) == 1:
                entries[path] = files[path].tree_entry()
        if prefix and not entries:
            what = f"{prefix} not in {repo_id}@{sha}"
            return self._not_found(h, "GET", "EntryNotFound", what, {"X-Repo-Commit": sha})
        _reply(h, "GET", 200, [entries[k] for k in sorted(entries)])


def _send(h: BaseHTTPRequestHandler, method: str, status: int, body: bytes, headers: dict) -> None:
    h.send_response(status)
    for key, value in headers.items():
        h.send_header(key, value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if method != "HEAD":
        h.wfile.write(body)


def _reply(h, method: str, status: int, payload, headers: dict | None = None) -> None:
    _send(h, method, status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def _make_handler(hub: LoopbackHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers in client pools

        def do_HEAD(self) -> None:
            hub._handle(self, "HEAD")

        def do_GET(self) -> None:
            hub._handle(self, "GET")

        def log_message(self, format, *args) -> None:  # keep pytest output quiet
            pass

    return Handler


def forbid_non_loopback(monkeypatch) -> None:
    """Make any socket connection to a non-loopback address fail loudly for the rest of the test."""
    import ipaddress
    import socket

    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(f"test tried to reach non-loopback address {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def point_client_at(monkeypatch, endpoint: str, cache_dir) -> None:
    """Point the imported ``huggingface_hub`` at ``endpoint`` with a private cache under ``cache_dir``.

    ``HF_ENDPOINT``/``HF_HOME``/``HF_HUB_OFFLINE`` are read once at import, so the values
    computed from them in ``huggingface_hub.constants`` are patched instead (undone by
    ``monkeypatch`` at teardown).  Online mode is forced; set ``constants.HF_HUB_OFFLINE``
    back to True in a test to simulate ``HF_HUB_OFFLINE=1``.
    """
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    home = os.path.join(str(cache_dir), "hf_home")
    values = {"ENDPOINT": endpoint, "HF_HUB_OFFLINE": False,
              "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
              "HF_HOME": home, "HF_HUB_CACHE": os.path.join(home, "hub"),
              "HUGGINGFACE_HUB_CACHE": os.path.join(home, "hub"), "HF_ASSETS_CACHE": os.path.join(home, "assets"),
              "HF_XET_CACHE": os.path.join(home, "xet"), "HF_TOKEN_PATH": os.path.join(home, "token"),
              "HF_STORED_TOKENS_PATH": os.path.join(home, "stored_tokens"),
              "HF_HUB_DISABLE_IMPLICIT_TOKEN": True, "HF_HUB_DISABLE_TELEMETRY": True}  # no real token is read or sent
    for name, value in values.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    # The module-level HfApi behind huggingface_hub.model_info() & co. froze ENDPOINT at import.
    if hasattr(hf_api, "api"):
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE",  # proxies: keep loopback direct
                "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    if hasattr(_http, "close_session"):
        _http.close_session()  # the shared client is rebuilt lazily, reading the environment above
