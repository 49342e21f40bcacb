"""A small Hugging Face Hub stand-in on 127.0.0.1 that answers the calls huggingface-hub 2.x makes.

Two servers run in threads: the "hub" (model info API and ``resolve`` routes) and a "CDN" on
another port that serves LFS blobs, as huggingface.co redirects large files to a CDN host. The
answers follow the real hub: ``GET /api/models/{repo}/revision/{rev}?blobs=true`` gives the commit
sha and each file's size, git blob id and, for LFS files, sha256; ``HEAD /{repo}/resolve/{rev}/{file}``
gives ``X-Repo-Commit`` and ``ETag`` (git files) or a 302 to the CDN with ``X-Linked-Etag`` and
``X-Linked-Size`` (LFS files); errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound,
EntryNotFound). Every request is logged with its Authorization header so tests can see where a
token went.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id


def lfs_pointer(data: bytes) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
            f"size {len(data)}\n").encode()


@dataclass
class FakeRepo:
    """One model repository at one commit, reachable by branch and tag names."""

    files: dict[str, bytes]
    sha: str = field(default_factory=lambda: secrets.token_hex(20))
    refs: dict[str, str] = field(default_factory=dict)
    served: dict[str, bytes] = field(default_factory=dict)  # bytes served instead of the published ones
    announced: dict[str, int] = field(default_factory=dict)  # a Content-Length to send instead of the true one
    flood: dict[str, int] = field(default_factory=dict)  # send this many bytes, no Content-Length, then close
    flooded: dict[str, int] = field(default_factory=dict)  # how many flood bytes the client actually took
    xet: bool = False  # announce LFS files as Xet-backed, as huggingface.co does for most repos now
    _siblings: dict[str, dict] = field(default_factory=dict, repr=False)  # published metadata, computed once

    def __post_init__(self) -> None:
        self.refs = {"main": self.sha, "v1.0": self.sha, **self.refs}

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def sibling(self, name: str) -> dict:
        if name not in self._siblings:
            self._siblings[name] = self._publish(name)
        return self._siblings[name]

    def _publish(self, name: str) -> dict:
        data = self.files[name]
        entry: dict = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
        if self.is_lfs(name):
            pointer = lfs_pointer(data)
            entry.update(blobId=git_blob_id(pointer),
                         lfs={"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                              "pointerSize": len(pointer)})
        return entry

    def body(self, name: str) -> bytes:
        return self.served.get(name, self.files[name])


class FakeHub:
    """Hub and CDN servers on loopback, started on creation; call ``close`` when done."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str, str, str | None]] = []  # (server, method, path, authorization)
        self._lock = threading.Lock()
        self._cdn = self._serve("cdn")
        self._hub = self._serve("hub")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> FakeRepo:
        repo = FakeRepo(files=dict(files))
        self.repos[repo_id] = repo
        return repo

    def add_folder(self, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None) -> FakeRepo:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, {**files, **(extra or {})})

    def close(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def log(self, *entry: str | None) -> None:
        with self._lock:
            self.requests.append(entry)  # type: ignore[arg-type]

    def _serve(self, role: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(_Handler):
            fake = hub
            name = role

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a connection may idle; keeps stray clients from pinning threads
    fake: FakeHub
    name: str

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        self.fake.log(self.name, method, path, self.headers.get("Authorization"))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if self.name == "cdn":
            return self._cdn_blob(method, parts)
        if parts[:2] == ["api", "models"]:
            return self._model_info(parts[2:])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(method, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        self._send(404, b"not found", {})

    def _model_info(self, rest: list[str]) -> None:
        repo_id, revision = "/".join(rest[:2]), "main"
        if len(rest) >= 4 and rest[2] == "revision":
            revision = "/".join(rest[3:])
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        body = {"_id": repo.sha[:24], "id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False,
                "lastModified": "2025-01-01T00:00:00.000Z", "tags": [], "library_name": "transformers",
                "siblings": [repo.sibling(n) for n in sorted(repo.files)]}
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, method: str, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        if filename not in repo.files:
            self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.sha})
            return
        sibling = repo.sibling(filename)
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{sibling["blobId"]}"'}
        if repo.is_lfs(filename):
            sha256 = sibling["lfs"]["sha256"]
            headers.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(sibling["size"]),
                            "Location": f"{self.fake.cdn}/repos/{repo_id}/{sha256}?signature=fake"})
            if repo.xet:  # a client with Xet enabled would fetch a token here and bypass the mirror
                headers.update({"X-Xet-Hash": sha256,
                                "X-Xet-Refresh-Route": f"/api/models/{repo_id}/xet-read-token/{repo.sha}"})
            self._send(302, b"", headers, head=method == "HEAD")
            return
        self._send_file(repo, filename, headers, head=method == "HEAD")

    def _cdn_blob(self, method: str, parts: list[str]) -> None:
        repo = self.fake.repos.get("/".join(parts[1:-1]))
        for name in repo.files if repo else ():
            if repo.is_lfs(name) and repo.sibling(name)["lfs"]["sha256"] == parts[-1]:
                self._send_file(repo, name, {}, head=method == "HEAD")
                return
        self._send(404, b"no such blob", {})

    def _send_file(self, repo: FakeRepo, name: str, headers: dict[str, str], *, head: bool) -> None:
        headers = {**headers, "Content-Type": "application/octet-stream"}
        if name in repo.flood and not head:
            self._flood(repo, name, headers)
        elif name in repo.announced:
            body = repo.body(name)
            self.send_response(200)
            for key, value in {**headers, "Content-Length": str(repo.announced[name])}.items():
                self.send_header(key, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)
            self.close_connection = True
        else:
            self._send(200, repo.body(name), headers, head=head)

    def _flood(self, repo: FakeRepo, name: str, headers: dict[str, str]) -> None:
        """An HTTP/1.0-style body delimited by closing the connection: the client cannot know its size."""
        self.protocol_version = "HTTP/1.0"
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        chunk, sent = b"\0" * 65536, 0
        try:
            while sent < repo.flood[name]:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client hung up, as it should
        repo.flooded[name] = sent
        self.close_connection = True

    def _repo_at(self, repo_id: str, revision: str) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found", {})
            return None
        if revision not in repo.refs and revision != repo.sha:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", {})
            return None
        return repo

    def _error(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {**headers, "X-Error-Code": code, "X-Error-Message": message,
                                  "Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(0 if status == 302 else len(body)))
        self.end_headers()
        if not head and status != 302:
            self.wfile.write(body)
