"""A fake GitHub at one origin on 127.0.0.1: OAuth web flow, REST v3 under /api/v3, and git
smart HTTP (`/<owner>/<name>.git`) through the real `git http-backend`.

Wire formats follow GitHub's documentation: OAuth token errors are HTTP 200 with an `error`
field; REST errors carry `message` and `documentation_url`; lists paginate with a `Link`
header; a private repository the token cannot see is a 404, never a 403.

One token table serves REST and git: personal access tokens ("ghp_"), OAuth tokens ("gho_"),
and expiring user tokens ("ghu_", with "ghr_" refresh tokens). A revoked or expired token is
refused by both.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from tests.fakes.git_http import (
    GitBackend,
    GitHandler,
    GitRequest,
    Permission,
    basic_password,
    read_body,
)
from tests.fakes.http_server import BackgroundHTTPServer

log = logging.getLogger(__name__)

DOCS = "https://docs.github.com/rest"
OAUTH_DOCS = (
    "https://docs.github.com/apps/managing-oauth-apps/"
    "troubleshooting-oauth-app-access-token-request-errors"
)
_REDIRECT_MISMATCH = "The redirect_uri MUST match the registered callback URL for this application."
CODE_TTL = 600.0
_ALPHABET = string.ascii_letters + string.digits
JSON_TYPE = "application/json; charset=utf-8"


def _token(prefix: str, length: int = 36) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _User:
    login: str
    id: int
    name: str | None
    email: str | None
    email_private: bool


@dataclass
class _App:
    client_id: str
    client_secret: str
    expiring: bool
    access_ttl: float
    refresh_ttl: float
    callback_url: str | None


@dataclass
class _Code:
    client_id: str
    login: str
    redirect_uri: str | None
    scope: str
    expires_at: float


@dataclass
class _Refresh:
    client_id: str
    login: str
    scope: str
    access_token: str
    expires_at: float


@dataclass
class _TokenInfo:
    login: str
    scope: str | None  # None: no X-OAuth-Scopes header (expiring user tokens)


@dataclass
class _Pull:
    id: int
    number: int
    title: str
    body: str | None
    draft: bool
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    user: str
    created_at: float
    updated_at: float
    state: str = "open"
    closed_at: float | None = None
    merged_at: float | None = None


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    description: str | None
    created_at: float
    updated_at: float
    pushed_at: float
    pulls: list[_Pull] = field(default_factory=list)


@dataclass
class _ApiFailure:
    status: int
    retry_after: float | None
    remaining: int


class _Reply:
    def __init__(
        self,
        status: int,
        payload: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = JSON_TYPE,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.content_type = content_type
        self.body = body if body is not None else json.dumps(payload).encode()


def _error(status: int, message: str, **extra: Any) -> _Reply:
    return _Reply(
        status, {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
    )


def _not_found() -> _Reply:
    return _error(404, "Not Found")


def _validation(*errors: dict[str, str]) -> _Reply:
    return _error(422, "Validation Failed", errors=list(errors))


class FakeGitHub(BackgroundHTTPServer):
    """`with FakeGitHub(tmp_path) as github:` web origin `github.url`, REST at `github.api_url`."""

    def __init__(self, root: Path) -> None:
        self.git = GitBackend(root)
        self.requests: list[tuple[str, str]] = []
        self.on_git_request: Callable[[GitRequest], None] | None = None
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._apps: dict[str, _App] = {}
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._token_info: dict[str, _TokenInfo] = {}
        self._api_failures: list[_ApiFailure] = []
        self._signed_in: str | None = None
        self._deny_next = False
        self._ids = iter(range(1001, 10**9))
        super().__init__(_handler_for(self), name="fake-github")
        self.api_url = f"{self.url}/api/v3"
        self.git.base_url = self.url
        self.git.on_request = self._on_git

    @property
    def git_requests(self) -> list[GitRequest]:
        return self.git.requests

    # --- users and tokens ---------------------------------------------------------------------

    def add_user(
        self,
        login: str,
        *,
        name: str | None = None,
        email: str | None = None,
        email_private: bool = False,
    ) -> str:
        """Create (or update) the user; returns a new personal access token for them.
        `email_private` hides the address from /user but keeps it in /user/emails."""
        with self._lock:
            user = self._user(login)
            user.name, user.email, user.email_private = name, email, email_private
        return self.issue_token(login)

    def issue_token(
        self, login: str, *, prefix: str = "ghp_", ttl: float | None = None, scope: str = "repo"
    ) -> str:
        """Another token for an existing user, valid for REST and git until `ttl` runs out."""
        token = _token(prefix)
        with self._lock:
            self._user(login)
            self._token_info[token] = _TokenInfo(login, scope)
        self.git.add_token(token, login, expires_at=None if ttl is None else time.time() + ttl)
        return token

    def revoke_token(self, token: str) -> None:
        """Revoke an access token or a refresh token."""
        with self._lock:
            self._token_info.pop(token, None)
            self._refresh.pop(token, None)
        self.git.revoke_token(token)

    def register_oauth_app(
        self,
        client_id: str,
        client_secret: str,
        *,
        expiring_tokens: bool = False,
        access_token_ttl: float = 28800,
        refresh_token_ttl: float = 15897600,
        callback_url: str | None = None,
    ) -> None:
        with self._lock:
            self._apps[client_id] = _App(
                client_id,
                client_secret,
                expiring_tokens,
                access_token_ttl,
                refresh_token_ttl,
                callback_url,
            )

    def sign_in_as(self, login: str) -> None:
        """The browser is signed in at GitHub as `login`: authorize answers with a code."""
        with self._lock:
            self._user(login)
            self._signed_in = login

    def sign_out(self) -> None:
        with self._lock:
            self._signed_in = None

    def deny_next_authorization(self) -> None:
        with self._lock:
            self._deny_next = True

    def fail_next_api(
        self, count: int, *, status: int = 503, retry_after: float | None = None
    ) -> None:
        """The next `count` REST requests answer `status`; with `retry_after` they look like
        GitHub's rate limit (Retry-After, X-RateLimit-Remaining: 0)."""
        with self._lock:
            self._api_failures.append(_ApiFailure(status, retry_after, count))

    # --- repositories -------------------------------------------------------------------------

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        default_branch: str = "main",
        files: Mapping[str, str | bytes] | None = None,
        branches: Iterable[str] = (),
        private: bool = True,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Returns the REST repository JSON as its owner sees it."""
        self.git.create_repo(
            owner,
            name,
            default_branch=default_branch,
            files=files,
            branches=branches,
            private=private,
        )
        with self._lock:
            self._user(owner)
            repo = self._meta(owner, name)
            assert repo is not None
            repo.description = description
            return self._repo_json(repo, owner)

    def commit_to(
        self,
        owner: str,
        name: str,
        branch: str,
        files: Mapping[str, str | bytes | None],
        message: str = "upstream change",
    ) -> str:
        sha = self.git.commit_to(owner, name, branch, files, message)
        self.touch_repo(owner, name)
        return sha

    def touch_repo(self, owner: str, name: str, at: float | None = None) -> None:
        """Set `updated_at` and `pushed_at` (a `time.time()` value, default now)."""
        with self._lock:
            repo = self._meta(owner, name)
            if repo is not None:
                repo.updated_at = repo.pushed_at = time.time() if at is None else at

    def ref_sha(self, owner: str, name: str, ref: str) -> str | None:
        return self.git.ref_sha(owner, name, ref)

    def repo_path(self, owner: str, name: str) -> Path:
        return self.git.repo_path(owner, name)

    def clone_url(self, owner: str, name: str) -> str:
        return self.git.clone_url(owner, name)

    def grant(self, owner: str, name: str, login: str) -> None:
        with self._lock:
            self._user(login)
        self.git.grant(owner, name, login)

    def fail_next_git(
        self, count: int, *, status: int = 503, service: str = "git-receive-pack"
    ) -> None:
        self.git.fail_next(count, status=status, service=service)

    def pulls(self, owner: str, name: str) -> list[dict[str, Any]]:
        """Every pull request of the repository (any state), oldest first."""
        with self._lock:
            repo = self._meta(owner, name)
            return [] if repo is None else [self._pull_json(repo, p, owner) for p in repo.pulls]

    def close_pull(self, owner: str, name: str, number: int, *, merged: bool = False) -> None:
        with self._lock:
            repo = self._meta(owner, name)
            assert repo is not None, f"{owner}/{name} does not exist"
            pull = next(p for p in repo.pulls if p.number == number)
            pull.state = "closed"
            pull.closed_at = pull.updated_at = time.time()
            pull.merged_at = pull.closed_at if merged else None

    # --- state helpers (call with the lock held) ----------------------------------------------

    def _user(self, login: str) -> _User:
        user = self._users.get(login)
        if user is None:
            user = self._users[login] = _User(login, next(self._ids), None, None, False)
        return user

    def _meta(self, owner: str, name: str) -> _Repo | None:
        repo = self._repos.get((owner, name))
        if repo is None and self.git.exists(owner, name):
            now = time.time()
            repo = _Repo(owner, name, next(self._ids), None, now, now, now)
            self._repos[(owner, name)] = repo
        return repo

    def _on_git(self, request: GitRequest) -> None:
        if (
            request.method == "POST"
            and request.service == "git-receive-pack"
            and request.status == 200
        ):
            owner, _, rest = request.path.lstrip("/").partition("/")
            self.touch_repo(owner, rest.split(".git", 1)[0])
        callback = self.on_git_request
        if callback is not None:
            callback(request)

    def _take_api_failure(self) -> _ApiFailure | None:
        with self._lock:
            for failure in self._api_failures:
                if failure.remaining > 0:
                    failure.remaining -= 1
                    return failure
        return None

    # --- JSON shapes --------------------------------------------------------------------------

    def _user_short(self, login: str) -> dict[str, Any]:
        user = self._user(login)
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_fake{user.id}",
            "avatar_url": f"{self.url}/avatars/u/{user.id}?v=4",
            "url": f"{self.api_url}/users/{quote(user.login)}",
            "html_url": f"{self.url}/{quote(user.login)}",
            "type": "User",
            "site_admin": False,
        }

    def _repo_json(self, repo: _Repo, viewer: str | None) -> dict[str, Any]:
        owner, name = repo.owner, repo.name
        private = self.git.is_private(owner, name)
        full = f"{owner}/{name}"
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": f"R_fake{repo.id}",
            "name": name,
            "full_name": full,
            "owner": self._user_short(owner),
            "private": private,
            "visibility": "private" if private else "public",
            "html_url": f"{self.url}/{full}",
            "url": f"{self.api_url}/repos/{full}",
            "clone_url": f"{self.url}/{full}.git",
            "description": repo.description,
            "fork": False,
            "default_branch": self.git.default_branch(owner, name),
            "created_at": _iso(repo.created_at),
            "updated_at": _iso(repo.updated_at),
            "pushed_at": _iso(repo.pushed_at),
            "archived": False,
            "disabled": False,
        }
        if viewer is not None:
            permission = self.git.permission(viewer, owner, name)
            data["permissions"] = {
                "admin": viewer == owner,
                "maintain": viewer == owner,
                "push": permission == "write",
                "triage": permission == "write",
                "pull": permission != "none",
            }
        return data

    def _pull_json(self, repo: _Repo, pull: _Pull, viewer: str | None) -> dict[str, Any]:
        full = f"{repo.owner}/{repo.name}"
        head_sha, base_sha = pull.head_sha, pull.base_sha
        if pull.state == "open":
            head_sha = (
                self.git.ref_sha(repo.owner, repo.name, f"refs/heads/{pull.head_ref}") or head_sha
            )
            base_sha = (
                self.git.ref_sha(repo.owner, repo.name, f"refs/heads/{pull.base_ref}") or base_sha
            )
        api = f"{self.api_url}/repos/{full}/pulls/{pull.number}"
        repo_json = self._repo_json(repo, viewer)
        owner_short = self._user_short(repo.owner)

        def side(ref: str, sha: str) -> dict[str, Any]:
            label = f"{repo.owner}:{ref}"
            return {"label": label, "ref": ref, "sha": sha, "user": owner_short, "repo": repo_json}

        return {
            "url": api,
            "id": pull.id,
            "node_id": f"PR_fake{pull.id}",
            "html_url": f"{self.url}/{full}/pull/{pull.number}",
            "diff_url": f"{self.url}/{full}/pull/{pull.number}.diff",
            "issue_url": f"{self.api_url}/repos/{full}/issues/{pull.number}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._user_short(pull.user),
            "body": pull.body,
            "created_at": _iso(pull.created_at),
            "updated_at": _iso(pull.updated_at),
            "closed_at": None if pull.closed_at is None else _iso(pull.closed_at),
            "merged_at": None if pull.merged_at is None else _iso(pull.merged_at),
            "draft": pull.draft,
            "merged": pull.merged_at is not None,
            "head": side(pull.head_ref, head_sha),
            "base": side(pull.base_ref, base_sha),
        }

    # --- HTTP ---------------------------------------------------------------------------------

    def _serve(self, handler: GitHandler) -> None:
        body = read_body(handler)
        with self._lock:
            self.requests.append((handler.command, handler.path))
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            if split.path == "/login/oauth/authorize" and handler.command == "GET":
                reply = self._authorize(query)
            elif split.path == "/login/oauth/access_token" and handler.command == "POST":
                reply = self._access_token(handler, body, query)
            elif split.path == "/api/v3" or split.path.startswith("/api/v3/"):
                reply = self._api(handler, split.path.removeprefix("/api/v3"), split.query, body)
            else:
                reply = _not_found()
        except Exception:
            log.exception("fake GitHub failed on %s", handler.path)
            reply = _error(500, "Server Error")
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", reply.content_type)
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(reply.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client went away

    # OAuth ---------------------------------------------------------------------------------------

    def _authorize(self, query: dict[str, str]) -> _Reply:
        with self._lock:
            app = self._apps.get(query.get("client_id", ""))
            if app is None:
                return _Reply(400, body=b"<h1>Invalid client_id</h1>\n", content_type="text/html")
            redirect = query.get("redirect_uri") or app.callback_url
            if not redirect:
                return _Reply(
                    400, body=b"<h1>Missing redirect_uri</h1>\n", content_type="text/html"
                )
            state = query.get("state")
            if app.callback_url and not redirect.startswith(app.callback_url):
                error = {
                    "error": "redirect_uri_mismatch",
                    "error_description": _REDIRECT_MISMATCH,
                    "error_uri": f"{OAUTH_DOCS}#redirect-uri-mismatch",
                }
                return _redirect(app.callback_url, error, state)
            login = self._signed_in
            if self._deny_next or login is None:
                self._deny_next = False
                error = {
                    "error": "access_denied",
                    "error_description": "The user has denied your application access.",
                    "error_uri": f"{OAUTH_DOCS}#access-denied",
                }
                return _redirect(redirect, error, state)
            code = secrets.token_hex(10)
            scope = ",".join(query.get("scope", "").replace(",", " ").split())
            self._codes[code] = _Code(
                app.client_id,
                login,
                query.get("redirect_uri"),
                scope,
                time.time() + CODE_TTL,
            )
            return _redirect(redirect, {"code": code}, state)

    def _access_token(self, handler: GitHandler, body: bytes, query: dict[str, str]) -> _Reply:
        params = dict(query)
        content_type = handler.headers.get("Content-Type", "")
        if "json" in content_type:
            try:
                loaded = json.loads(body or b"{}")
            except ValueError:
                loaded = {}
            params.update(
                {k: str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
            )
        else:
            params.update(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        basic = handler.headers.get("Authorization")
        if basic and basic.lower().startswith("basic ") and client_secret is None:
            try:
                user, _, secret = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except (binascii.Error, ValueError):
                user, secret = "", ""
            client_id, client_secret = client_id or unquote(user), unquote(secret)
        as_json = "json" in handler.headers.get("Accept", "")
        with self._lock:
            app = self._apps.get(client_id or "")
            if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
                return _oauth_error(
                    as_json,
                    "incorrect_client_credentials",
                    "The client_id and/or client_secret passed are incorrect.",
                    "#incorrect-client-credentials",
                )
            grant_type = params.get("grant_type") or "authorization_code"
            if grant_type == "authorization_code":
                code = self._codes.get(params.get("code", ""))
                if code is None or code.client_id != app.client_id or code.expires_at < time.time():
                    return _oauth_error(
                        as_json,
                        "bad_verification_code",
                        "The code passed is incorrect or expired.",
                        "#bad-verification-code",
                    )
                redirect_uri = params.get("redirect_uri")
                if redirect_uri and code.redirect_uri and redirect_uri != code.redirect_uri:
                    return _oauth_error(
                        as_json,
                        "redirect_uri_mismatch",
                        _REDIRECT_MISMATCH,
                        "#redirect-uri-mismatch2",
                    )
                del self._codes[params["code"]]
                return _token_reply(as_json, self._grant(app, code.login, code.scope))
            if grant_type == "refresh_token":
                refresh = self._refresh.get(params.get("refresh_token", ""))
                if (
                    refresh is None
                    or refresh.client_id != app.client_id
                    or refresh.expires_at < time.time()
                ):
                    return _oauth_error(
                        as_json,
                        "bad_refresh_token",
                        "The refresh token passed is incorrect or expired.",
                        "#bad-refresh-token",
                    )
                # GitHub: once a refresh token is used, it and the old access token stop working.
                del self._refresh[params["refresh_token"]]
                self._token_info.pop(refresh.access_token, None)
                self.git.revoke_token(refresh.access_token)
                return _token_reply(as_json, self._grant(app, refresh.login, refresh.scope))
            return _oauth_error(
                as_json,
                "unsupported_grant_type",
                f"The grant type {grant_type} is not supported.",
                "#unsupported-grant-type",
            )

    def _grant(self, app: _App, login: str, scope: str) -> dict[str, Any]:
        now = time.time()
        if not app.expiring:
            access = _token("gho_")
            self._token_info[access] = _TokenInfo(login, scope)
            self.git.add_token(access, login)
            return {"access_token": access, "token_type": "bearer", "scope": scope}
        access, refresh = _token("ghu_"), _token("ghr_", 76)
        self._token_info[access] = _TokenInfo(login, None)
        self.git.add_token(access, login, expires_at=now + app.access_ttl)
        self._refresh[refresh] = _Refresh(
            app.client_id, login, scope, access, now + app.refresh_ttl
        )
        return {
            "access_token": access,
            "expires_in": math.ceil(app.access_ttl),
            "refresh_token": refresh,
            "refresh_token_expires_in": math.ceil(app.refresh_ttl),
            "scope": "",  # GitHub Apps have permissions, not scopes
            "token_type": "bearer",
        }

    # REST ----------------------------------------------------------------------------------------

    def _api(self, handler: GitHandler, path: str, raw_query: str, body: bytes) -> _Reply:
        failure = self._take_api_failure()
        if failure is not None:
            if failure.retry_after is None:
                return _error(failure.status, "Server Error")
            reset = str(int(time.time() + failure.retry_after))
            reply = _error(failure.status, "API rate limit exceeded for user ID 1.")
            reply.headers.update(
                {
                    "Retry-After": str(math.ceil(failure.retry_after)),
                    "X-RateLimit-Limit": "5000",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset,
                }
            )
            return reply
        token = _bearer(handler.headers.get("Authorization"))
        login: str | None = None
        headers: dict[str, str] = {}
        if token is not None:
            login = self.git.login_for_token(token)
            if login is None:
                return _error(401, "Bad credentials")
            with self._lock:
                info = self._token_info.get(token)
            if info is not None and info.scope is not None:
                headers["X-OAuth-Scopes"] = info.scope.replace(",", ", ")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        method = handler.command
        with self._lock:
            reply = self._route(method, parts, query, body, login, path)
        reply.headers = {**headers, **reply.headers}
        return reply

    def _route(
        self,
        method: str,
        parts: list[str],
        query: dict[str, str],
        body: bytes,
        login: str | None,
        path: str,
    ) -> _Reply:
        if parts and parts[0] == "user":
            if login is None:
                return _error(401, "Requires authentication")
            if parts == ["user"] and method == "GET":
                return self._get_user(login)
            if parts == ["user", "emails"] and method == "GET":
                user = self._user(login)
                emails = []
                if user.email:
                    visibility = "private" if user.email_private else "public"
                    emails.append(
                        {
                            "email": user.email,
                            "primary": True,
                            "verified": True,
                            "visibility": visibility,
                        }
                    )
                return _Reply(200, emails)
            if parts == ["user", "repos"] and method == "GET":
                return self._user_repos(login, query, path)
            return _not_found()
        if len(parts) >= 3 and parts[0] == "repos":
            owner, name, rest = parts[1], parts[2], parts[3:]
            repo = self._meta(owner, name)
            permission: Permission = self.git.permission(login, owner, name)
            if repo is None or permission == "none":
                return _not_found()
            if not rest and method == "GET":
                return _Reply(200, self._repo_json(repo, login))
            if rest == ["branches"] and method == "GET":
                return self._branches(repo, query, path)
            if len(rest) >= 2 and rest[0] == "branches" and method == "GET":
                return self._branch(repo, "/".join(rest[1:]))
            if rest == ["pulls"] and method == "GET":
                return self._list_pulls(repo, login, query, path)
            if rest == ["pulls"] and method == "POST":
                return self._create_pull(repo, login, permission, body)
            if len(rest) == 2 and rest[0] == "pulls" and rest[1].isdigit() and method == "GET":
                pull = next((p for p in repo.pulls if p.number == int(rest[1])), None)
                return (
                    _not_found()
                    if pull is None
                    else _Reply(200, self._pull_json(repo, pull, login))
                )
        return _not_found()

    def _get_user(self, login: str) -> _Reply:
        user = self._user(login)
        return _Reply(
            200,
            {
                **self._user_short(login),
                "name": user.name,
                "email": None if user.email_private else user.email,
            },
        )

    def _user_repos(self, login: str, query: dict[str, str], path: str) -> _Reply:
        affiliation = set(
            (query.get("affiliation") or "owner,collaborator,organization_member").split(",")
        )
        kind = query.get("type")
        if kind is not None and "affiliation" in query:
            return _validation({"resource": "Search", "field": "q", "code": "invalid"})
        if kind == "owner":
            affiliation = {"owner"}
        elif kind == "member":
            affiliation = {"collaborator", "organization_member"}
        visibility = query.get("visibility") or {"public": "public", "private": "private"}.get(
            kind or "", "all"
        )
        repos = []
        for repo in self._repos.values():
            owned = repo.owner == login
            if owned and "owner" not in affiliation:
                continue
            if not owned:
                if "collaborator" not in affiliation and "organization_member" not in affiliation:
                    continue
                if self.git.permission(login, repo.owner, repo.name) != "write":
                    continue
            private = self.git.is_private(repo.owner, repo.name)
            if (visibility == "public" and private) or (visibility == "private" and not private):
                continue
            repos.append(repo)
        sort = query.get("sort") or "full_name"
        direction = query.get("direction") or ("asc" if sort == "full_name" else "desc")
        if sort == "full_name":
            repos.sort(key=lambda r: (f"{r.owner}/{r.name}".lower(), r.id))
        else:
            attr = {"created": "created_at", "pushed": "pushed_at"}.get(sort, "updated_at")
            repos.sort(key=lambda r: (float(getattr(r, attr)), r.id))
        if direction == "desc":
            repos.reverse()
        page, links = self._paginate(repos, query, path)
        return _Reply(200, [self._repo_json(r, login) for r in page], headers=links)

    def _branches(self, repo: _Repo, query: dict[str, str], path: str) -> _Reply:
        branches = self.git.branches(repo.owner, repo.name)
        page, links = self._paginate(branches, query, path)
        full = f"{repo.owner}/{repo.name}"
        items = [
            {
                "name": branch,
                "commit": {"sha": sha, "url": f"{self.api_url}/repos/{full}/commits/{sha}"},
                "protected": False,
            }
            for branch, sha in page
        ]
        return _Reply(200, items, headers=links)

    def _branch(self, repo: _Repo, branch: str) -> _Reply:
        sha = self.git.ref_sha(repo.owner, repo.name, f"refs/heads/{branch}")
        if sha is None:
            return _error(404, "Branch not found")
        full = f"{repo.owner}/{repo.name}"
        return _Reply(
            200,
            {
                "name": branch,
                "commit": {"sha": sha, "url": f"{self.api_url}/repos/{full}/commits/{sha}"},
                "protected": False,
                "_links": {
                    "self": f"{self.api_url}/repos/{full}/branches/{quote(branch)}",
                    "html": f"{self.url}/{full}/tree/{quote(branch)}",
                },
            },
        )

    def _list_pulls(
        self, repo: _Repo, login: str | None, query: dict[str, str], path: str
    ) -> _Reply:
        state = query.get("state") or "open"
        pulls = [p for p in repo.pulls if state == "all" or p.state == state]
        if head := query.get("head"):
            head_owner, sep, head_ref = head.partition(":")
            if sep:
                pulls = [p for p in pulls if head_owner == repo.owner and p.head_ref == head_ref]
            else:
                pulls = [p for p in pulls if head_owner == repo.owner]
        if base := query.get("base"):
            pulls = [p for p in pulls if p.base_ref == base]
        sort = query.get("sort") or "created"
        key: Callable[[_Pull], float] = (
            (lambda p: p.updated_at)
            if sort in ("updated", "popularity", "long-running")
            else (lambda p: p.created_at)
        )
        pulls.sort(
            key=lambda p: (key(p), p.number), reverse=(query.get("direction") or "desc") == "desc"
        )
        page, links = self._paginate(pulls, query, path)
        return _Reply(200, [self._pull_json(repo, p, login) for p in page], headers=links)

    def _create_pull(
        self, repo: _Repo, login: str | None, permission: Permission, body: bytes
    ) -> _Reply:
        if login is None:
            return _error(401, "Requires authentication")
        if permission != "write":
            return _error(403, "Resource not accessible by personal access token")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return _error(400, "Problems parsing JSON")
        if not isinstance(data, dict):
            return _error(400, "Problems parsing JSON")
        for required in ("title", "head", "base"):
            if not isinstance(data.get(required), str) or not data[required]:
                return _validation(
                    {"resource": "PullRequest", "code": "missing_field", "field": required}
                )
        head, base = str(data["head"]), str(data["base"])
        head_owner, sep, head_ref = head.partition(":")
        if not sep:
            head_owner, head_ref = repo.owner, head
        head_sha = self.git.ref_sha(repo.owner, repo.name, f"refs/heads/{head_ref}")
        if head_owner != repo.owner or head_sha is None:
            return _validation({"resource": "PullRequest", "field": "head", "code": "invalid"})
        base_sha = self.git.ref_sha(repo.owner, repo.name, f"refs/heads/{base}")
        if base_sha is None:
            return _validation({"resource": "PullRequest", "field": "base", "code": "invalid"})
        for pull in repo.pulls:
            if pull.state == "open" and pull.head_ref == head_ref and pull.base_ref == base:
                message = f"A pull request already exists for {repo.owner}:{head_ref}."
                return _validation(
                    {"resource": "PullRequest", "code": "custom", "message": message}
                )
        if self.git.is_ancestor(repo.owner, repo.name, head_sha, base_sha):
            message = f"No commits between {base} and {head_ref}"
            return _validation({"resource": "PullRequest", "code": "custom", "message": message})
        now = time.time()
        number = max((p.number for p in repo.pulls), default=0) + 1
        pull = _Pull(
            id=next(self._ids),
            number=number,
            title=str(data["title"]),
            body=data.get("body") if isinstance(data.get("body"), str) else None,
            draft=bool(data.get("draft", False)),
            head_ref=head_ref,
            head_sha=head_sha,
            base_ref=base,
            base_sha=base_sha,
            user=login,
            created_at=now,
            updated_at=now,
        )
        repo.pulls.append(pull)
        full = f"{repo.owner}/{repo.name}"
        location = f"{self.api_url}/repos/{full}/pulls/{number}"
        return _Reply(201, self._pull_json(repo, pull, login), headers={"Location": location})

    def _paginate(
        self, items: list[Any], query: dict[str, str], path: str
    ) -> tuple[list[Any], dict[str, str]]:
        per_page = _int(query.get("per_page"), 30)
        per_page = 30 if per_page < 1 else min(per_page, 100)
        page = max(_int(query.get("page"), 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(number: int, rel: str) -> str:
            params = {k: v for k, v in query.items() if k != "page"}
            params["page"] = str(number)
            url = urlunsplit(("", "", f"{self.api_url}{path}", urlencode(params), ""))
            return f'<{url}>; rel="{rel}"'

        rels: list[str] = []
        if page > 1:
            rels.append(link(min(page - 1, last), "prev"))
        if page < last:
            rels.append(link(page + 1, "next"))
            rels.append(link(last, "last"))
        if page > 1:
            rels.append(link(1, "first"))
        return chunk, ({"Link": ", ".join(rels)} if rels else {})


class _Handler(GitHandler):
    fake: FakeGitHub

    def fallback(self) -> None:
        self.fake._serve(self)


def _handler_for(fake: FakeGitHub) -> type[_Handler]:
    class Handler(_Handler):
        pass

    Handler.fake = fake
    Handler.backend = fake.git
    return Handler


def _redirect(target: str, params: dict[str, str], state: str | None) -> _Reply:
    if state is not None:
        params = {**params, "state": state}
    split = urlsplit(target)
    query = f"{split.query}&{urlencode(params)}" if split.query else urlencode(params)
    location = urlunsplit((split.scheme, split.netloc, split.path, query, split.fragment))
    return _Reply(
        302, headers={"Location": location}, body=b"", content_type="text/html; charset=utf-8"
    )


def _oauth_error(as_json: bool, error: str, description: str, anchor: str) -> _Reply:
    return _token_reply(
        as_json,
        {"error": error, "error_description": description, "error_uri": OAUTH_DOCS + anchor},
    )


def _token_reply(as_json: bool, payload: dict[str, Any]) -> _Reply:
    if as_json:
        return _Reply(200, payload)
    form = urlencode({k: str(v) for k, v in payload.items()}).encode()
    return _Reply(200, body=form, content_type="application/x-www-form-urlencoded; charset=utf-8")


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token"):
        return value.strip()
    if scheme.lower() == "basic":
        return basic_password(header) or ""
    return ""


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
