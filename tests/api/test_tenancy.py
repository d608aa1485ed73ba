"""Every route, walked as Bob on Alice's objects: 404 and no change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from api.app import create_app
from config.settings import Settings
from db.engine import SessionFactory
from db.models import LoopRun
from db.users import get_or_create_user
from tests.conftest import TABLES, Caller

# A valid body for every route that takes one, so validation cannot answer before tenancy does.
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/api/repos/{repo_id}"): None,
    ("PATCH", "/api/repos/{repo_id}"): {"position": 0, "env": {"X": "1"}},
    ("DELETE", "/api/repos/{repo_id}"): None,
    ("POST", "/api/repos/{repo_id}/branches"): {"name": "bob-branch"},
    ("GET", "/api/repos/{repo_id}/branches"): None,
    ("GET", "/api/repos/{repo_id}/remote-branches"): None,
    ("GET", "/api/branches/{branch_id}"): None,
    ("PATCH", "/api/branches/{branch_id}"): {"agent": "codex", "loop_enabled": True},
    ("DELETE", "/api/branches/{branch_id}"): None,
    ("GET", "/api/branches/{branch_id}/messages"): None,
    ("GET", "/api/branches/{branch_id}/events"): None,
    ("POST", "/api/branches/{branch_id}/messages"): {"content": "hello"},
    ("POST", "/api/branches/{branch_id}/stop"): None,
    ("POST", "/api/branches/{branch_id}/loops"): {"prompt": "go"},
    ("GET", "/api/loops/{loop_id}"): None,
    ("POST", "/api/loops/{loop_id}/stop"): None,
    ("GET", "/api/branches/{branch_id}/diff"): None,
    ("GET", "/api/branches/{branch_id}/commits"): None,
    ("POST", "/api/branches/{branch_id}/push"): {"force_with_lease": True},
    ("POST", "/api/branches/{branch_id}/pull-request"): {"title": "t", "draft": True},
    ("POST", "/api/branches/{branch_id}/git/{op}"): {"name": "bob-renamed"},
    ("DELETE", "/api/tokens/{token_id}"): None,
}


async def _snapshot(sessions: SessionFactory) -> dict[str, list[Any]]:
    async with sessions() as session:
        result = {}
        for table in TABLES:
            rows = await session.execute(text(f"SELECT * FROM {table}"))
            # Token bookkeeping (last use) legitimately changes on every authenticated call.
            volatile = {"last_used_at", "updated_at"} if table == "api_tokens" else set()
            result[table] = sorted(
                (tuple(v for k, v in row._mapping.items() if k not in volatile) for row in rows),
                key=repr,
            )
        return result


async def test_every_route_hides_other_users_objects(
    api: httpx.AsyncClient,
    alice: Caller,
    bob: Caller,
    sessions: SessionFactory,
    git_remote: Path,
    settings: Settings,
) -> None:
    async with sessions.begin() as session:
        await get_or_create_user(session, "alice", is_admin=True)
    repo = await api.post("/api/repos", json={"url": str(git_remote)}, headers=alice.headers)
    assert repo.status_code == 201, repo.text
    branch = await api.post(
        f"/api/repos/{repo.json()['id']}/branches", json={}, headers=alice.headers
    )
    assert branch.status_code == 201, branch.text
    await api.put(
        "/api/me/credentials/anthropic", json={"api_key": "sk-alice-1"}, headers=alice.headers
    )
    alice_token = (await api.get("/api/tokens", headers=alice.headers)).json()[0]["id"]
    async with sessions.begin() as session:
        alice_id = (
            await session.execute(text("SELECT id FROM users WHERE login = 'alice'"))
        ).scalar()
        loop = LoopRun(
            user_id=alice_id, branch_id=branch.json()["id"], prompt="go", max_iterations=3
        )
        session.add(loop)
        await session.flush()
        loop_id = str(loop.id)
    ids = {
        "repo_id": repo.json()["id"],
        "branch_id": branch.json()["id"],
        "token_id": alice_token,
        "loop_id": loop_id,
        "op": "rename",
    }

    # Read from the OpenAPI document: it lists every route the app serves.
    paths = create_app(settings).openapi()["paths"]
    routes = [
        (method.upper(), path)
        for path, operations in paths.items()
        # /api/me/... addresses the caller's own objects by kind, never another user's by id;
        # /api/github/... names repositories on GitHub, reached with the caller's own token.
        if "{" in path and not path.startswith(("/api/me/", "/api/github/"))
        for method in operations
    ]
    assert set(routes) == set(BODIES), "add new id-bearing routes to BODIES"

    before = await _snapshot(sessions)
    for method, path in routes:
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        response = await api.request(method, url, json=BODIES[(method, path)], headers=bob.headers)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    assert await _snapshot(sessions) == before

    # Collections show Bob nothing of Alice's.
    assert (await api.get("/api/repos", headers=bob.headers)).json() == []
    assert (await api.get("/api/me/credentials", headers=bob.headers)).json() == []
    assert [t["name"] for t in (await api.get("/api/tokens", headers=bob.headers)).json()] == [
        "tests"
    ]
    bob_agents = (await api.get("/api/agents", headers=bob.headers)).json()
    assert not any(agent["available"] for agent in bob_agents)
