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
sends it.  Only model repos with ``org/name`` ids are modelled; no xet.
``point_client_at`` points an imported ``huggingface_hub`` at a server (and at a
private cache) for the duration of one pytest test, with Xet uploads off.

Uploads, as ``HfApi.create_repo`` + ``HfApi.create_commit`` send them when Xet is
off (``HF_HUB_DISABLE_XET``; the LFS protocol of ``_commit_api.py`` / ``lfs.py``):

* ``POST /api/repos/create``: ``{"name", "organization", "visibility"}``; a new repo
  gets a first commit holding ``.gitattributes`` (as on the Hub); an existing one
  answers 409, which ``exist_ok=True`` accepts.
* ``POST /api/validate-yaml``: the README's front matter, parsed with PyYAML.
* ``POST /api/models/{repo}/preupload/{rev}``: ``uploadMode`` "lfs" for the suffixes
  in ``LFS_SUFFIXES``, else "regular", and the ``oid`` the file has at ``rev`` (sha256
  for LFS files, git blob sha1 for others: what the client compares to skip it).
* ``POST /{repo}.git/info/lfs/objects/batch``: basic-transfer ``upload`` and
  ``verify`` actions (none for an object already stored); ``PUT /_lfs/{oid}`` stores
  the bytes when they hash to ``oid``; ``POST /_lfs/{oid}/verify``.
* ``POST /api/models/{repo}/commit/{branch}``: the ndjson commit (``header``,
  base64 ``file``, ``lfsFile`` whose oid must have been uploaded, ``deletedFile``);
  the new tree is the branch's tree with these changes; ``parentCommit`` must be the
  branch head (412 otherwise).  Answers ``{"commitOid", "commitUrl"}``.
* ``GET /api/models/{repo}[/revision/{rev}]?blobs=true``: siblings with ``size``,
  ``blobId`` and ``lfs`` ``{"sha256", "size", "pointerSize"}``
  (``model_info(files_metadata=True)``).

Auth: ``write_tokens`` None (the default) accepts every write.  A set of tokens makes
a write without one of them answer 401 ("Invalid credentials in Authorization header"),
and one with a token of ``read_only_tokens`` 403, as the Hub does.  Reads never need a
token.  ``commits`` logs ``(repo_id, commit, summary, description)`` of every upload.
"""

from __future__ import annotations

import base64
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
        self.write_tokens: set[str] | None = None  # None: writes need no token
        self.read_only_tokens: set[str] = set()  # tokens that may read but not write (403)
        self.visibility: dict[str, str | None] = {}  # repo_id -> visibility asked at creation
        self.commits: list[tuple[str, str, str, str]] = []  # (repo_id, sha, summary, description)
        self._lfs: dict[str, bytes] = {}  # uploaded LFS objects by sha256
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

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """The tree of ``repo_id`` at a branch, tag or commit: path -> bytes."""
        with self._lock:
            repo = self._repos[repo_id]
            sha = rev if rev in repo["commits"] else repo["refs"][rev]
            return {path: f.data for path, f in repo["commits"][sha].items()}

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
        body = _read_body(h) if method in ("POST", "PUT") else b""
        with self._lock:
            self.requests.append((method, split.path))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _reply(h, method, failure, {"error": "injected failure"})
        parts = split.path.strip("/").split("/")
        if method in ("POST", "PUT"):
            return self._write(h, method, split, parts, body)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, method, "/".join(parts[:2]), unquote(parts[3]), unquote("/".join(parts[4:])))
        if method == "GET" and len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            if not rest or (len(rest) == 2 and rest[0] == "revision"):
                blobs = parse_qs(split.query).get("blobs", [""])[-1].lower() in ("1", "true")
                return self._info(h, repo_id, unquote(rest[1]) if rest else "main", blobs)
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

    def _info(self, h, repo_id: str, rev: str, blobs: bool = False) -> None:
        if (found := self._lookup(h, "GET", repo_id, rev)) is None:
            return
        sha, files = found
        siblings = [{"rfilename": p} for p in sorted(files)]
        if blobs:  # model_info(files_metadata=True)
            for sibling in siblings:
                f = files[sibling["rfilename"]]
                sibling.update({"size": len(f.data), "blobId": f.oid})
                if f.lfs:
                    sibling["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": f.pointer_size}
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


    # -- uploads ----------------------------------------------------------------------

    def _write(self, h, method: str, split, parts: list[str], body: bytes) -> None:
        """POST/PUT routes of an upload (see the module docstring)."""
        if method == "PUT" and len(parts) == 2 and parts[0] == "_lfs":
            return self._lfs_put(h, parts[1], body)
        if method == "POST" and len(parts) == 3 and parts[0] == "_lfs" and parts[2] == "verify":
            with self._lock:
                stored = parts[1] in self._lfs
            return _reply(h, method, 200 if stored else 404, {"ok": stored})
        if parts == ["api", "validate-yaml"]:
            return self._validate_yaml(h, body)
        if parts == ["api", "repos", "create"]:
            return self._create_repo(h, json.loads(body))
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            repo_id = f"{parts[0]}/{parts[1][:-4]}"
            return self._lfs_batch(h, repo_id, json.loads(body))
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
            repo_id, rev = "/".join(parts[2:4]), unquote("/".join(parts[5:]))
            if not self._may_write(h, repo_id):
                return
            if parts[4] == "preupload":
                return self._preupload(h, repo_id, rev, json.loads(body))
            return self._commit(h, repo_id, rev, body)
        _reply(h, method, 404, {"error": f"Not imitated by LoopbackHub: {method} {split.path}"})

    def _may_write(self, h, repo_id: str) -> bool:
        """True if the request's token may write; else answers 401/403 as the Hub does."""
        if self.write_tokens is None:
            return True
        auth = h.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token in self.write_tokens:
            return True
        if token in self.read_only_tokens:
            what = f"You don't have the rights to write to {repo_id}"
            _reply(h, "POST", 403, {"error": what}, {"X-Error-Message": what})
        else:
            what = "Invalid credentials in Authorization header"
            _reply(h, "POST", 401, {"error": what}, {"X-Error-Message": what})
        return False

    def _create_repo(self, h, payload: dict) -> None:
        repo_id = f"{payload.get('organization')}/{payload.get('name')}"
        if not self._may_write(h, repo_id):
            return
        with self._lock:
            exists = repo_id in self._repos
        url = f"{self.endpoint}/{repo_id}"
        if exists:
            return _reply(h, "POST", 409, {"error": "You already created this model repo", "url": url})
        self.visibility[repo_id] = payload.get("visibility")
        self.add_commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
        _reply(h, "POST", 200, {"url": url, "name": repo_id})

    def _validate_yaml(self, h, body: bytes) -> None:
        import yaml

        content = json.loads(body).get("content", "")
        if content.startswith("---\n"):
            try:
                yaml.safe_load(content[4 : content.index("\n---\n", 4)])
            except (ValueError, yaml.YAMLError) as exc:
                return _reply(h, "POST", 400, {"errors": [{"message": str(exc)}]})
        _reply(h, "POST", 200, {"errors": [], "warnings": []})

    def _preupload(self, h, repo_id: str, rev: str, payload: dict) -> None:
        if (found := self._lookup(h, "POST", repo_id, rev)) is None:
            return
        _, files = found
        answer = []
        for item in payload["files"]:
            path = item["path"]
            current = files.get(path)
            oid = None if current is None else current.sha256 if current.lfs else current.oid
            answer.append({"path": path, "uploadMode": "lfs" if path.endswith(LFS_SUFFIXES) else "regular",
                           "shouldIgnore": False, "oid": oid})
        _reply(h, "POST", 200, {"files": answer, "commitOid": found[0]})

    def _lfs_batch(self, h, repo_id: str, payload: dict) -> None:
        if not self._may_write(h, repo_id):
            return
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            with self._lock:
                stored = obj["oid"] in self._lfs
            if not stored:
                href = f"{self.endpoint}/_lfs/{obj['oid']}"
                answer["actions"] = {"upload": {"href": href}, "verify": {"href": href + "/verify"}}
            objects.append(answer)
        _reply(h, "POST", 200, {"transfer": "basic", "objects": objects})

    def _lfs_put(self, h, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return _reply(h, "PUT", 400, {"error": f"uploaded bytes do not hash to {oid}"})
        with self._lock:
            self._lfs[oid] = body
        _reply(h, "PUT", 200, {})

    def _commit(self, h, repo_id: str, branch: str, body: bytes) -> None:
        if (found := self._lookup(h, "POST", repo_id, branch)) is None:
            return
        head, files = found
        tree = {path: f.data for path, f in files.items()}
        summary, description = "", ""
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary, description = value.get("summary", ""), value.get("description", "")
                parent = value.get("parentCommit")
                if parent is not None and not head.startswith(parent):
                    return _reply(h, "POST", 412, {"error": f"{branch} is at {head}, not {parent}"})
            elif key == "file":
                tree[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                with self._lock:
                    data = self._lfs.get(value["oid"])
                if data is None:
                    return _reply(h, "POST", 422, {"error": f"LFS object {value['oid']} was not uploaded"})
                tree[value["path"]] = data
            elif key == "deletedFile":
                tree.pop(value["path"], None)
            else:
                return _reply(h, "POST", 400, {"error": f"commit operation {key!r} not imitated"})
        sha = self.add_commit(repo_id, tree, branch=branch)
        with self._lock:
            self.commits.append((repo_id, sha, summary, description))
        _reply(h, "POST", 200, {"commitOid": sha, "commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}",
                                "success": True, "pullRequestUrl": None})


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with Content-Length or chunked."""
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()  # the CRLF after each chunk
    return h.rfile.read(int(h.headers.get("Content-Length") or 0))


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

        def do_POST(self) -> None:
            hub._handle(self, "POST")

        def do_PUT(self) -> None:
            hub._handle(self, "PUT")

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
              "HF_HUB_DISABLE_IMPLICIT_TOKEN": True, "HF_HUB_DISABLE_TELEMETRY": True,  # no real token is read or sent
              # uploads take the LFS protocol this server speaks, not Xet (hf_xet is installed)
              "HF_HUB_DISABLE_XET": True}
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
