"""Git smart HTTP with GitHub-style Basic auth, served by the real `git http-backend` CGI.

Access rules (as on github.com):

- the Basic *password* is a token, the username is ignored (GitHub uses `x-access-token`);
- an unknown, revoked or expired token -> 401 with `WWW-Authenticate: Basic realm="GitHub"`;
- no credentials for a private or missing repository, or for any push -> the same 401, so git
  asks its credential helper and retries;
- authenticated but no access to a private (or missing) repository -> 404 "Repository not
  found."; a push to a readable public repository without write access -> 403.

A login may read and push the repositories it owns (owner == login) and those it was granted.
`GitBackend` holds that state and serves one request from any `BaseHTTPRequestHandler`, so the
fake GitHub serves git at its own origin; `GitHttpServer` is a standalone server around it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_server import BackgroundHTTPServer

log = logging.getLogger(__name__)

REALM = 'Basic realm="GitHub"'
SERVICES = ("git-upload-pack", "git-receive-pack")
CGI_TIMEOUT = 300.0
# The part of a URL path that names a repository: /<owner>/<name>.git/<rest>
_GIT_PATH = re.compile(
    r"^/(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)/(?P<name>[A-Za-z0-9._-]+)\.git(?P<rest>/.*)?$"
)
_AUTHOR = {
    "GIT_AUTHOR_NAME": "Upstream Fake",
    "GIT_AUTHOR_EMAIL": "fake@example.invalid",
    "GIT_COMMITTER_NAME": "Upstream Fake",
    "GIT_COMMITTER_EMAIL": "fake@example.invalid",
}

Permission = Literal["none", "read", "write"]


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str  # URL path, e.g. /alice/app.git/info/refs
    service: str | None  # "git-upload-pack" / "git-receive-pack" / None
    login: str | None  # authenticated user, None when anonymous
    status: int  # response status sent


@dataclass
class _Failure:
    service: str
    status: int
    remaining: int


class _Reject(Exception):
    def __init__(self, status: int, message: str, *, challenge: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge


class GitBackend:
    """Bare repositories under root/<owner>/<name>.git, plus who may reach them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.requests: list[GitRequest] = []
        self.on_request: Callable[[GitRequest], None] | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float | None]] = {}  # token -> (login, expires_at)
        self._grants: set[tuple[str, str, str]] = set()
        self._public: set[tuple[str, str]] = set()
        self._failures: list[_Failure] = []
        self._commit_lock = threading.Lock()
        # Owners start with an alphanumeric, so this directory can never be an owner's.
        self._home = root / ".home"
        self._home.mkdir(exist_ok=True)
        self.base_url = ""  # set by the server that mounts this backend

    # --- access -------------------------------------------------------------------------------

    def add_token(self, token: str, login: str, *, expires_at: float | None = None) -> None:
        """`expires_at` is a `time.time()` value; past it the token is refused like a bad one."""
        with self._lock:
            self._tokens[token] = (login, expires_at)

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def login_for_token(self, token: str) -> str | None:
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            return None
        login, expires_at = found
        if expires_at is not None and time.time() >= expires_at:
            return None
        return login

    def grant(self, owner: str, name: str, login: str) -> None:
        with self._lock:
            self._grants.add((owner, name, login))

    def set_private(self, owner: str, name: str, private: bool) -> None:
        with self._lock:
            if private:
                self._public.discard((owner, name))
            else:
                self._public.add((owner, name))

    def is_private(self, owner: str, name: str) -> bool:
        with self._lock:
            return (owner, name) not in self._public

    def exists(self, owner: str, name: str) -> bool:
        return (self.repo_path(owner, name) / "HEAD").is_file()

    def permission(self, login: str | None, owner: str, name: str) -> Permission:
        if not self.exists(owner, name):
            return "none"
        with self._lock:
            granted = login is not None and (owner, name, login) in self._grants
            public = (owner, name) in self._public
        if login is not None and (login == owner or granted):
            return "write"
        return "read" if public else "none"

    def fail_next(
        self, count: int, *, status: int = 503, service: str = "git-receive-pack"
    ) -> None:
        """The next `count` requests for `service` answer `status` without running git. Only
        requests that pass authentication count, so git's anonymous first try (answered 401)
        never uses one up."""
        with self._lock:
            self._failures.append(_Failure(service, status, count))

    def _take_failure(self, service: str | None) -> int | None:
        with self._lock:
            for failure in self._failures:
                if failure.service == service and failure.remaining > 0:
                    failure.remaining -= 1
                    return failure.status
        return None

    # --- repositories -------------------------------------------------------------------------

    def repo_path(self, owner: str, name: str) -> Path:
        return self.root / owner / f"{name}.git"

    def clone_url(self, owner: str, name: str) -> str:
        return f"{self.base_url}/{owner}/{name}.git"

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        default_branch: str = "main",
        files: Mapping[str, str | bytes] | None = None,
        branches: Iterable[str] = (),
        private: bool = True,
    ) -> str:
        """A bare repository whose `default_branch` (and every one of `branches`) points at one
        commit holding `files`; returns the clone URL."""
        path = self.repo_path(owner, name)
        if path.exists():
            raise FileExistsError(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._git(None, "init", "-q", "--bare", f"--initial-branch={default_branch}", str(path))
        self._git(path, "config", "http.receivepack", "true")
        self._git(path, "config", "uploadpack.allowFilter", "true")
        self.set_private(owner, name, private)
        sha = self._commit(
            path, None, {"README.md": "hello\n"} if files is None else files, "initial commit"
        )
        self._git(path, "update-ref", f"refs/heads/{default_branch}", sha, "")
        for branch in branches:
            self._git(path, "update-ref", f"refs/heads/{branch}", sha, "")
        return self.clone_url(owner, name)

    def commit_to(
        self,
        owner: str,
        name: str,
        branch: str,
        files: Mapping[str, str | bytes | None],
        message: str = "upstream change",
    ) -> str:
        """Commit `files` (None deletes a path) onto `branch` as if someone else pushed; a missing
        branch starts from the default branch. Returns the new commit sha."""
        path = self.repo_path(owner, name)
        ref = f"refs/heads/{branch}"
        with self._commit_lock:
            parent = self._ref(path, ref)
            old = parent or ""
            if parent is None:
                parent = self._ref(path, "HEAD")
            sha = self._commit(path, parent, files, message)
            # The expected old value makes a push racing this commit fail loudly, not vanish.
            self._git(path, "update-ref", "-m", message, ref, sha, old)
        return sha

    def ref_sha(self, owner: str, name: str, ref: str) -> str | None:
        path = self.repo_path(owner, name)
        return self._ref(path, ref) if path.is_dir() else None

    def default_branch(self, owner: str, name: str) -> str:
        head = self._git(self.repo_path(owner, name), "symbolic-ref", "HEAD").strip()
        return head.removeprefix("refs/heads/")

    def branches(self, owner: str, name: str) -> list[tuple[str, str]]:
        """(branch, sha) pairs sorted by name."""
        out = self._git(
            self.repo_path(owner, name),
            "for-each-ref",
            "--sort=refname",
            "--format=%(refname:strip=2) %(objectname)",
            "refs/heads/",
        )
        return [(b, s) for b, s in (line.split(" ", 1) for line in out.splitlines() if line)]

    def is_ancestor(self, owner: str, name: str, ancestor: str, descendant: str) -> bool:
        result = subprocess.run(
            ["git", "merge-base", "--is-ancestor", ancestor, descendant],
            cwd=self.repo_path(owner, name),
            env=self.git_env(),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def git_env(self, **extra: str) -> dict[str, str]:
        """A minimal, deterministic environment for git run on the host."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            **_AUTHOR,
        }
        env.update(extra)
        return env

    def _git(
        self,
        cwd: Path | None,
        *args: str,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env or self.git_env(),
            input=stdin,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            raise RuntimeError(f"git {' '.join(args)} failed: {stderr.strip()}")
        return result.stdout.decode()

    def _ref(self, path: Path, ref: str) -> str | None:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=path,
            env=self.git_env(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def _commit(
        self,
        path: Path,
        parent: str | None,
        files: Mapping[str, str | bytes | None],
        message: str,
    ) -> str:
        # A private index file: no worktree, and the bare repository's own index stays untouched.
        with tempfile.TemporaryDirectory(prefix="fake-git-index-") as tmp:
            env = self.git_env(GIT_INDEX_FILE=str(Path(tmp) / "index"))
            if parent is not None:
                self._git(path, "read-tree", parent, env=env)
            entries: list[str] = []
            for file, content in files.items():
                if content is None:
                    entries.append(f"0 {'0' * 40}\t{file}")  # mode 0 removes the path
                    continue
                data = content.encode() if isinstance(content, str) else content
                blob = self._git(path, "hash-object", "-w", "--stdin", stdin=data).strip()
                entries.append(f"100644 {blob}\t{file}")
            if entries:
                listing = "".join(f"{entry}\n" for entry in entries).encode()
                self._git(path, "update-index", "--index-info", env=env, stdin=listing)
            tree = self._git(path, "write-tree", env=env).strip()
            parents = ["-p", parent] if parent is not None else []
            return self._git(path, "commit-tree", tree, *parents, "-m", message, env=env).strip()

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> bool:
        """Serve `handler`'s request if its path names a repository; False leaves it untouched."""
        split = urlsplit(handler.path)
        match = _GIT_PATH.match(split.path)
        if match is None:
            return False
        owner, name, rest = match["owner"], match["name"], match["rest"] or "/"
        service = _service(handler.command, rest, split.query)
        login: str | None = None
        status = 500
        try:
            body = read_body(handler)
            try:
                login = self._authorize(handler, owner, name, service)
                failed = self._take_failure(service)
                if failed is not None:
                    raise _Reject(failed, "Service unavailable, try again later.")
            except _Reject as reject:
                status = reject.status
                self._notify(handler.command, split.path, service, login, status)
                _send_text(handler, status, reject.message, challenge=reject.challenge)
                return True
            status, headers, payload = self._run_backend(
                handler, split.path, split.query, body, login
            )
            self._notify(handler.command, split.path, service, login, status)
            handler.send_response(status)
            for key, value in headers:
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client went away mid-request
        except Exception:
            log.exception("fake git server failed on %s %s", handler.command, handler.path)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                _send_text(handler, 500, "Internal error.")
        return True

    def _authorize(
        self, handler: BaseHTTPRequestHandler, owner: str, name: str, service: str | None
    ) -> str | None:
        login: str | None = None
        token = basic_password(handler.headers.get("Authorization"))
        if token is not None:
            login = self.login_for_token(token)
            if login is None:
                raise _Reject(
                    401,
                    "Invalid username or token. "
                    "Password authentication is not supported for Git operations.",
                    challenge=True,
                )
        permission = self.permission(login, owner, name)
        push = service == "git-receive-pack"
        if login is None and (push or permission == "none"):
            raise _Reject(401, "Authentication required.", challenge=True)
        if permission == "none":
            raise _Reject(404, "Repository not found.")
        if push and permission != "write":
            raise _Reject(403, f"Permission to {owner}/{name}.git denied to {login}.")
        return login

    def _notify(
        self, method: str, path: str, service: str | None, login: str | None, status: int
    ) -> None:
        request = GitRequest(method, path, service, login, status)
        with self._lock:
            self.requests.append(request)
        callback = self.on_request
        if callback is not None:
            try:
                callback(request)
            except Exception:
                log.exception("on_request callback failed")

    def _run_backend(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        query: str,
        body: bytes,
        login: str | None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = handler.headers
        env = self.git_env(
            GIT_PROJECT_ROOT=str(self.root),
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            REQUEST_METHOD=handler.command,
            PATH_INFO=path,
            QUERY_STRING=query,
            CONTENT_TYPE=headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            REMOTE_ADDR=str(handler.client_address[0]),
            REMOTE_USER=login or "",
            GIT_CONFIG_COUNT="2",
            GIT_CONFIG_KEY_0="http.receivepack",
            GIT_CONFIG_VALUE_0="true",
            GIT_CONFIG_KEY_1="uploadpack.allowFilter",
            GIT_CONFIG_VALUE_1="true",
        )
        if encoding := headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        if protocol := headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = protocol
            env["HTTP_GIT_PROTOCOL"] = protocol
        if not login:
            del env["REMOTE_USER"]
        result = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            timeout=CGI_TIMEOUT,
            check=False,
        )
        if result.stderr:
            log.debug("git http-backend: %s", result.stderr.decode(errors="replace").strip())
        return _parse_cgi(result.stdout)


class GitHttpServer(GitBackend, BackgroundHTTPServer):
    """Bare repositories under root/<owner>/<name>.git served over smart HTTP: a `GitBackend`
    with a server of its own."""

    def __init__(self, root: Path) -> None:
        GitBackend.__init__(self, root)
        BackgroundHTTPServer.__init__(self, _handler_for(self), name="fake-git-http")
        self.base_url = self.url


class GitHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler; subclasses answer non-git paths in `fallback`."""

    protocol_version = "HTTP/1.1"
    backend: GitBackend

    def log_message(self, format: str, *args: Any) -> None:
        return None  # keep test output clean

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            if not self.backend.handle(self):
                self.fallback()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away

    def fallback(self) -> None:
        read_body(self)
        _send_text(self, 404, "Not Found")


def _handler_for(backend: GitBackend) -> type[GitHandler]:
    class Handler(GitHandler):
        pass

    Handler.backend = backend
    return Handler


def _service(method: str, rest: str, query: str) -> str | None:
    if rest == "/info/refs":
        service = (parse_qs(query).get("service") or [""])[0]
        return service if service in SERVICES else None
    if method == "POST" and rest.lstrip("/") in SERVICES:
        return rest.lstrip("/")
    return None


def basic_password(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The whole request body; chunked bodies (git pushes above http.postBuffer) are decoded."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            line = handler.rfile.readline(65537)
            if not line:
                raise ConnectionResetError("client closed mid-body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(_read_exact(handler, size))
            handler.rfile.readline(3)  # CRLF after the chunk
    length = int(handler.headers.get("Content-Length") or 0)
    return _read_exact(handler, length) if length else b""


def _read_exact(handler: BaseHTTPRequestHandler, size: int) -> bytes:
    data = handler.rfile.read(size)
    if len(data) != size:
        raise ConnectionResetError("client closed mid-body")
    return data


def _send_text(
    handler: BaseHTTPRequestHandler, status: int, message: str, *, challenge: bool = False
) -> None:
    # git prints a text/plain error body as "remote: <line>", as it does GitHub's.
    data = (message + "\n").encode()
    handler.send_response(status)
    if challenge:
        handler.send_header("WWW-Authenticate", REALM)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)
    handler.wfile.flush()


def _parse_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, sep, body = output.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = output.partition(b"\n\n")
    if not sep:
        return 502, [("Content-Type", "text/plain")], b"bad CGI output\n"
    status = 200
    headers: list[tuple[str, str]] = []
    for raw in head.decode("latin-1").splitlines():
        key, _, value = raw.partition(":")
        key, value = key.strip(), value.strip()
        if not key:
            continue
        if key.lower() == "status":
            status = int(value.split()[0])
        elif key.lower() not in ("content-length", "connection", "transfer-encoding"):
            headers.append((key, value))
    return status, headers, body
