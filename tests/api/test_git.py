"""Bad input to a branch's git routes is refused before anything runs: no worker is needed to
answer these, and the branch is unchanged afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest


@pytest.fixture
async def branch(api: httpx.AsyncClient, git_remote: Path) -> dict[str, Any]:
    repo = await api.post("/api/repos", json={"url": str(git_remote)})
    assert repo.status_code == 201, repo.text
    other = await api.post(f"/api/repos/{repo.json()['id']}/branches", json={"name": "taken"})
    assert other.status_code == 201, other.text
    made = await api.post(f"/api/repos/{repo.json()['id']}/branches", json={"name": "feature/x"})
    assert made.status_code == 201, made.text
    return dict(made.json())


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("GET", "diff?against=-p", None, 422, "invalid against '-p'"),
        ("GET", "diff?against=a..b", None, 422, "not a branch, tag or commit"),
        ("GET", "diff?against=" + "a" * 300, None, 422, "against"),
        ("POST", "git/reset", {}, 422, "reset needs `commit`"),
        ("POST", "git/reset", {"commit": "HEAD~1", "mode": "sideways"}, 422, "mode"),
        ("POST", "git/reset", {"commit": "--hard"}, 422, "invalid commit '--hard'"),
        ("POST", "git/tag", {}, 422, "tag needs `name`"),
        ("POST", "git/tag", {"name": "bad name"}, 422, "invalid tag name"),
        ("POST", "git/rename", {"name": "bad..name"}, 422, ".."),
        ("POST", "git/rename", {"name": "main"}, 409, "default branch"),
        ("POST", "git/rename", {"name": "taken"}, 409, "another branch"),
        ("POST", "git/merge", {"direction": "sideways"}, 422, "direction"),
        ("POST", "git/squash", {}, 422, "op"),
        ("POST", "git/tag", {"name": "v1", "extra": 1}, 422, "extra"),
        ("POST", "push", {"force": True}, 422, "force"),
        ("POST", "pull-request", {"title": ""}, 422, "title"),
    ],
)
async def test_bad_git_requests_are_refused_and_change_nothing(
    api: httpx.AsyncClient,
    branch: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    detail: str,
) -> None:
    response = await api.request(method, f"/api/branches/{branch['id']}/{path}", json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    after = (await api.get(f"/api/branches/{branch['id']}")).json()
    assert after["name"] == "feature/x" and after["pushed_sha"] is None


async def test_git_routes_of_an_unknown_branch_are_404(api: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for method, path in (
        ("GET", "diff"),
        ("GET", "commits"),
        ("POST", "push"),
        ("POST", "pull-request"),
        ("POST", "git/rebase"),
    ):
        response = await api.request(method, f"/api/branches/{missing}/{path}")
        assert response.status_code == 404, (path, response.text)
