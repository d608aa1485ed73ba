"""GitHub repositories through the API: listing, branches, adding, remote branches, quota.

The app runs in local mode with GITHUB_URL and GITHUB_API_URL on the fake; the caller's GitHub
token is whatever they store as their github credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from db.engine import SessionFactory
from tests.conftest import Caller
from tests.fakes.github import FakeGitHub
from tests.githost import conftest as github_fixtures
from tests.githost.conftest import app_client, github_settings

fake_github = github_fixtures.fake_github

CONNECT = "connect GitHub first: sign in with GitHub or store a github credential"


@pytest.fixture
async def app(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    clean_db: None,
    fake_github: FakeGitHub,
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(github_settings(settings, fake_github, oauth=False), temporal_env) as c:
        yield c


async def _connect(app: httpx.AsyncClient, token: str) -> None:
    stored = await app.put("/api/me/credentials/github", json={"api_key": token})
    assert stored.status_code == 200, stored.text


async def test_listing_needs_a_github_token(app: httpx.AsyncClient) -> None:
    for path in ("/api/github/repos", "/api/github/repos/alice/app/branches"):
        response = await app.get(path)
        assert response.status_code == 409
        assert response.json()["detail"] == CONNECT


async def test_repos_paginate_and_search(app: httpx.AsyncClient, fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice")
    for index, name in enumerate(("alpha", "beta-service", "gamma")):
        fake_github.create_repo("alice", name, description="Billing API" if index == 2 else None)
        fake_github.touch_repo("alice", name, at=1_700_000_000 + index)
    await _connect(app, token)

    first = await app.get("/api/github/repos", params={"per_page": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [r["full_name"] for r in body["items"]] == ["alice/gamma", "alice/beta-service"]
    assert (body["page"], body["per_page"], body["has_next"]) == (1, 2, True)
    item = body["items"][0]
    assert item["private"] is True and item["default_branch"] == "main"
    assert item["clone_url"] == f"{fake_github.url}/alice/gamma.git"
    assert item["owner"] == "alice" and item["description"] == "Billing API"
    second = (await app.get("/api/github/repos", params={"page": 2, "per_page": 2})).json()
    assert [r["name"] for r in second["items"]] == ["alpha"] and second["has_next"] is False

    found = (await app.get("/api/github/repos", params={"q": "SERVICE"})).json()
    assert [r["name"] for r in found["items"]] == ["beta-service"]
    by_description = (await app.get("/api/github/repos", params={"q": "billing"})).json()
    assert [r["name"] for r in by_description["items"]] == ["gamma"]
    bad = await app.get("/api/github/repos", params={"per_page": 101})
    assert bad.status_code == 422


async def test_branches_from_github(app: httpx.AsyncClient, fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice")
    fake_github.create_repo("alice", "app", default_branch="trunk", branches=["feature/x"])
    await _connect(app, token)
    response = await app.get("/api/github/repos/alice/app/branches")
    assert response.status_code == 200, response.text
    assert sorted(b["name"] for b in response.json()["items"]) == ["feature/x", "trunk"]
    missing = await app.get("/api/github/repos/alice/nothing/branches")
    assert missing.status_code == 404
    assert "GitHub" in missing.json()["detail"]


async def test_a_token_github_rejects_is_a_clear_error(
    app: httpx.AsyncClient, fake_github: FakeGitHub
) -> None:
    token = fake_github.add_user("alice")
    await _connect(app, token)
    fake_github.revoke_token(token)
    response = await app.get("/api/github/repos")
    assert response.status_code == 502
    assert "GitHub rejected your stored token" in response.json()["detail"]
    assert token not in response.text
    fake_github.fail_next_api(1, status=403, retry_after=20)
    limited = await app.get("/api/github/repos")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) <= 20


async def test_add_private_repo_by_owner_and_name(
    app: httpx.AsyncClient, fake_github: FakeGitHub
) -> None:
    token = fake_github.add_user("alice")
    fake_github.create_repo("alice", "Secret-App", default_branch="trunk", branches=["dev"])

    # Without a token only public repositories are reachable.
    refused = await app.post("/api/repos", json={"url": "alice/Secret-App"})
    assert refused.status_code == 422
    assert CONNECT in refused.json()["detail"]
    assert (await app.get("/api/repos")).json() == []

    await _connect(app, token)
    missing = await app.post("/api/repos", json={"url": "alice/nothing"})
    assert missing.status_code == 422
    assert "cannot see it" in missing.json()["detail"]

    added = await app.post("/api/repos", json={"url": "alice/Secret-App.git"})
    assert added.status_code == 201, added.text
    repo = added.json()
    assert repo["github_full_name"] == "alice/Secret-App"
    assert repo["name"] == "Secret-App"
    assert repo["url"] == f"{fake_github.url}/alice/Secret-App.git"
    assert repo["default_branch"] == "trunk"
    assert repo["push_enabled"] is True
    # The git probe went through with the token (as the owner), not anonymously.
    assert any(r.login == "alice" and r.status == 200 for r in fake_github.git_requests)

    for again in ("alice/Secret-App", f"{fake_github.url}/alice/Secret-App"):
        duplicate = await app.post("/api/repos", json={"url": again})
        assert duplicate.status_code == 409, again


async def test_public_github_repo_without_a_token(
    app: httpx.AsyncClient, fake_github: FakeGitHub
) -> None:
    fake_github.create_repo("octo", "open", private=False, branches=["b1"])
    added = await app.post("/api/repos", json={"url": f"{fake_github.url}/octo/open"})
    assert added.status_code == 201, added.text
    repo = added.json()
    assert repo["github_full_name"] == "octo/open"
    assert repo["url"] == f"{fake_github.url}/octo/open.git"
    branches = await app.get(f"/api/repos/{repo['id']}/remote-branches")
    assert branches.status_code == 200, branches.text
    assert branches.json()["source"] == "git"
    assert [b["name"] for b in branches.json()["items"]] == ["b1", "main"]


async def test_remote_branches_of_github_and_plain_repos(
    app: httpx.AsyncClient, fake_github: FakeGitHub, git_remote: Path
) -> None:
    token = fake_github.add_user("alice")
    fake_github.create_repo("alice", "app", branches=["a", "b"])
    await _connect(app, token)
    on_github = (await app.post("/api/repos", json={"url": "alice/app"})).json()
    plain = (await app.post("/api/repos", json={"url": str(git_remote)})).json()
    assert plain["github_full_name"] is None

    github_branches = await app.get(
        f"/api/repos/{on_github['id']}/remote-branches", params={"per_page": 2}
    )
    assert github_branches.status_code == 200, github_branches.text
    body = github_branches.json()
    assert body["source"] == "github" and body["has_next"] is True
    assert [b["name"] for b in body["items"]] == ["a", "b"]
    assert all(b["protected"] is False and len(b["sha"]) == 40 for b in body["items"])

    git_branches = (await app.get(f"/api/repos/{plain['id']}/remote-branches")).json()
    assert git_branches["source"] == "git" and git_branches["has_next"] is False
    assert [b["name"] for b in git_branches["items"]] == ["develop", "main"]
    assert all(b["protected"] is None for b in git_branches["items"])
    paged = (
        await app.get(
            f"/api/repos/{plain['id']}/remote-branches", params={"page": 2, "per_page": 1}
        )
    ).json()
    assert [b["name"] for b in paged["items"]] == ["main"] and paged["has_next"] is False


async def test_branch_quota(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory, git_remote: Path
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            text("UPDATE users SET is_admin = true, branch_quota = 2 WHERE login = 'alice'")
        )
    repo = await api.post("/api/repos", json={"url": str(git_remote)}, headers=alice.headers)
    assert repo.status_code == 201, repo.text
    path = f"/api/repos/{repo.json()['id']}/branches"
    for name in ("one", "two"):
        created = await api.post(path, json={"name": name}, headers=alice.headers)
        assert created.status_code == 201, created.text
    over = await api.post(path, json={"name": "three"}, headers=alice.headers)
    assert over.status_code == 403
    assert over.json()["detail"].startswith("branch quota reached: you have 2 of 2 branches")
    names = [b["name"] for b in (await api.get(path, headers=alice.headers)).json()]
    assert sorted(names) == ["one", "two"]
    # Unlimited (None) for the local admin.
    local = await api.post("/api/repos", json={"url": str(git_remote)})
    assert local.status_code == 201
    for name in ("x1", "x2", "x3"):
        response = await api.post(f"/api/repos/{local.json()['id']}/branches", json={"name": name})
        assert response.status_code == 201, response.text
