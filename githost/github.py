"""An async client for the parts of the GitHub REST API (v3) this service uses.

Errors are typed by what a caller can do about them: `GitHubAuthError` (sign in again),
`GitHubNotFound` (wrong name, or the token cannot see it), `GitHubRateLimited` (wait),
`GitHubUnavailable` (retry). Every message is safe to show to the user: the token is sent in a
header only and never appears in one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

API_VERSION = "2022-11-28"
USER_AGENT = "upstream-agents"
# /user/repos is read in pages of 100 for a search; past this many repositories the search
# looks only at the most recently updated ones instead of issuing ever more requests.
SEARCH_PAGE_SIZE = 100
SEARCH_MAX_PAGES = 10
_MESSAGE_LIMIT = 300

T = TypeVar("T")


class GitHubError(Exception):
    """GitHub answered with an error (or could not be reached: `status` is None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GitHubAuthError(GitHubError):
    """401: the token is wrong, revoked or expired."""


class GitHubNotFound(GitHubError):
    """404: missing, or invisible to this token (GitHub does not tell the two apart)."""


class GitHubRateLimited(GitHubError):
    def __init__(self, status: int | None, message: str, retry_after: float | None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


class GitHubUnavailable(GitHubError):
    """5xx, a timeout or a network failure: worth retrying."""


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    name: str | None
    email: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class GitHubRepo:
    full_name: str
    name: str
    owner: str
    private: bool
    clone_url: str
    html_url: str
    default_branch: str
    description: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class GitHubBranch:
    name: str
    sha: str
    protected: bool


@dataclass(frozen=True)
class PullRequest:
    number: int
    html_url: str
    state: str
    draft: bool
    title: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    has_next: bool


RepoPage = Page[GitHubRepo]
BranchPage = Page[GitHubBranch]


def split_full_name(full_name: str) -> tuple[str, str]:
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"not an owner/name repository name: {full_name!r}")
    return owner, name


def _repo_path(full_name: str) -> str:
    owner, name = split_full_name(full_name)
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _user(data: dict[str, Any]) -> GitHubUser:
    return GitHubUser(
        id=int(data["id"]),
        login=str(data["login"]),
        name=data.get("name") or None,
        email=data.get("email") or None,
        avatar_url=data.get("avatar_url") or None,
    )


def _repo(data: dict[str, Any]) -> GitHubRepo:
    return GitHubRepo(
        full_name=str(data["full_name"]),
        name=str(data["name"]),
        owner=str(data["owner"]["login"]),
        private=bool(data.get("private", False)),
        clone_url=str(data["clone_url"]),
        html_url=str(data["html_url"]),
        default_branch=str(data.get("default_branch") or "main"),
        description=data.get("description") or None,
        updated_at=_datetime(data.get("updated_at")),
    )


def _branch(data: dict[str, Any]) -> GitHubBranch:
    return GitHubBranch(
        name=str(data["name"]),
        sha=str(data.get("commit", {}).get("sha", "")),
        protected=bool(data.get("protected", False)),
    )


def _pull(data: dict[str, Any]) -> PullRequest:
    return PullRequest(
        number=int(data["number"]),
        html_url=str(data["html_url"]),
        state=str(data.get("state", "open")),
        draft=bool(data.get("draft", False)),
        title=str(data.get("title", "")),
    )


def _error_message(response: httpx.Response) -> str:
    """GitHub's `message`, plus the `errors[].message` details a 422 carries."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return response.reason_phrase or f"HTTP {response.status_code}"
    parts = [str(data.get("message") or response.reason_phrase or response.status_code)]
    for item in data.get("errors") or []:
        if isinstance(item, dict) and item.get("message"):
            parts.append(str(item["message"]))
        elif isinstance(item, str):
            parts.append(item)
    return "; ".join(parts)[:_MESSAGE_LIMIT]


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    reset = response.headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    message = _error_message(response)
    if status == 401:
        raise GitHubAuthError(status, f"GitHub rejected the token: {message}")
    if status in (403, 429) and (
        response.headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in response.headers
        or "rate limit" in message.lower()
    ):
        wait = _retry_after(response)
        hint = f"; try again in {math.ceil(wait)} s" if wait is not None else ""
        raise GitHubRateLimited(status, f"GitHub rate limit exceeded{hint}", wait)
    if status == 404:
        raise GitHubNotFound(status, f"not found on GitHub: {message}")
    if status >= 500:
        raise GitHubUnavailable(status, f"GitHub is unavailable (HTTP {status}): {message}")
    raise GitHubError(status, f"GitHub answered HTTP {status}: {message}")


def _has_next(response: httpx.Response) -> bool:
    return "next" in response.links


class GitHubClient:
    """One token, one connection pool; use as `async with GitHubClient(...) as github:`."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"Bearer {token}",
                "User-Agent": USER_AGENT,
            },
            transport=transport,
            timeout=timeout,
            # An API redirect to another host would carry the token along.
            follow_redirects=False,
        )

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise GitHubUnavailable(None, "GitHub did not answer in time") from exc
        except httpx.TransportError as exc:
            raise GitHubUnavailable(None, f"GitHub is unreachable: {type(exc).__name__}") from exc
        _raise_for(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise GitHubUnavailable(
                response.status_code, "GitHub answered with something that is not JSON"
            ) from exc

    async def get_user(self) -> GitHubUser:
        return _user(await self._json("GET", "/user"))

    async def get_primary_email(self) -> str | None:
        """The verified primary address, for profiles that keep their email private."""
        emails = await self._json("GET", "/user/emails")
        for item in emails if isinstance(emails, list) else []:
            if isinstance(item, dict) and item.get("primary") and item.get("verified"):
                return str(item["email"])
        return None

    async def list_user_repos(
        self, page: int = 1, per_page: int = 30, sort: str = "updated"
    ) -> RepoPage:
        response = await self._request(
            "GET", "/user/repos", params={"page": page, "per_page": per_page, "sort": sort}
        )
        return Page([_repo(item) for item in response.json()], page, per_page, _has_next(response))

    async def search_user_repos(self, query: str, page: int = 1, per_page: int = 30) -> RepoPage:
        """Case-insensitive substring match on name, full name and description across the
        repositories the token can see (GitHub's search API cannot filter to those)."""
        needle = query.strip().lower()
        matches: list[GitHubRepo] = []
        for source_page in range(1, SEARCH_MAX_PAGES + 1):
            batch = await self.list_user_repos(source_page, SEARCH_PAGE_SIZE)
            for repo in batch.items:
                haystack = (repo.name, repo.full_name, repo.description or "")
                if any(needle in text.lower() for text in haystack):
                    matches.append(repo)
            if not batch.has_next:
                break
        start = (page - 1) * per_page
        return Page(
            matches[start : start + per_page], page, per_page, len(matches) > start + per_page
        )

    async def get_repo(self, full_name: str) -> GitHubRepo:
        return _repo(await self._json("GET", _repo_path(full_name)))

    async def list_branches(self, full_name: str, page: int = 1, per_page: int = 30) -> BranchPage:
        response = await self._request(
            "GET",
            f"{_repo_path(full_name)}/branches",
            params={"page": page, "per_page": per_page},
        )
        return Page(
            [_branch(item) for item in response.json()], page, per_page, _has_next(response)
        )

    async def find_open_pull(
        self, full_name: str, head_owner: str, branch: str, base: str | None = None
    ) -> PullRequest | None:
        params = {"state": "open", "head": f"{head_owner}:{branch}", "per_page": 10}
        if base is not None:
            params["base"] = base
        pulls = await self._json("GET", f"{_repo_path(full_name)}/pulls", params=params)
        if isinstance(pulls, list) and pulls:
            return _pull(pulls[0])
        return None

    async def create_pull(
        self,
        full_name: str,
        *,
        title: str,
        body: str | None,
        head: str,
        base: str,
        draft: bool = False,
    ) -> PullRequest:
        """Open a pull request, or return the open one for the same head and base: a retried
        call (a worker that died after GitHub answered) gets the same pull request back."""
        payload: dict[str, Any] = {"title": title, "head": head, "base": base, "draft": draft}
        if body is not None:
            payload["body"] = body
        try:
            return _pull(await self._json("POST", f"{_repo_path(full_name)}/pulls", json=payload))
        except GitHubError as exc:
            if exc.status != 422 or "already exists" not in exc.message.lower():
                raise
            head_owner, sep, branch = head.partition(":")
            if not sep:
                head_owner, branch = split_full_name(full_name)[0], head
            existing = await self.find_open_pull(full_name, head_owner, branch, base)
            if existing is None:
                raise
            return existing
