from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from db.engine import SessionFactory
from db.models import Branch


async def _repo(api: httpx.AsyncClient, git_remote: Path) -> dict[str, Any]:
    response = await api.post("/api/repos", json={"url": str(git_remote)})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _branch_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Branch)) or 0)


async def test_create_branch_with_generated_name(api: httpx.AsyncClient, git_remote: Path) -> None:
    repo = await _repo(api, git_remote)
    response = await api.post(f"/api/repos/{repo['id']}/branches", json={})
    assert response.status_code == 201, response.text
    branch = response.json()
    assert branch["name"].startswith("upstream/")
    assert branch["base_branch"] == "main"
    assert branch["agent"] == "claude-code"
    assert branch["model"] == "claude-sonnet-4-5"
    assert branch["status"] == "creating"
    listed = await api.get(f"/api/repos/{repo['id']}/branches")
    assert [b["id"] for b in listed.json()] == [branch["id"]]


async def test_create_branch_with_name_base_and_agent(
    api: httpx.AsyncClient, git_remote: Path
) -> None:
    repo = await _repo(api, git_remote)
    response = await api.post(
        f"/api/repos/{repo['id']}/branches",
        json={"name": "feature/login", "base_branch": "develop", "agent": "codex", "model": "o3"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "feature/login"
    assert response.json()["base_branch"] == "develop"
    again = await api.post(f"/api/repos/{repo['id']}/branches", json={"name": "feature/login"})
    assert again.status_code == 409
    on_remote = await api.post(f"/api/repos/{repo['id']}/branches", json={"name": "develop"})
    assert on_remote.status_code == 409


@pytest.mark.parametrize(
    "name",
    ["../x", "a..b", "-rf", "x.lock", "@{", "a" * 300, "bad\x07name", "tab\tname", "a b", "x/"],
)
async def test_invalid_branch_names_change_nothing(
    api: httpx.AsyncClient, git_remote: Path, sessions: SessionFactory, name: str
) -> None:
    repo = await _repo(api, git_remote)
    response = await api.post(f"/api/repos/{repo['id']}/branches", json={"name": name})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)
    assert await _branch_count(sessions) == 0


async def test_bad_base_agent_and_model_change_nothing(
    api: httpx.AsyncClient, git_remote: Path, sessions: SessionFactory
) -> None:
    repo = await _repo(api, git_remote)
    url = f"/api/repos/{repo['id']}/branches"
    missing = await api.post(url, json={"base_branch": "does-not-exist"})
    assert missing.status_code == 422
    assert "does not exist on the remote" in missing.json()["detail"]
    agent = await api.post(url, json={"agent": "gpt-engineer"})
    assert agent.status_code == 422
    assert "claude-code" in agent.json()["detail"] and "codex" in agent.json()["detail"]
    model = await api.post(url, json={"agent": "claude-code", "model": "o3"})
    assert model.status_code == 422
    assert "claude-sonnet-4" in model.json()["detail"]
    assert await _branch_count(sessions) == 0


async def test_patch_branch(api: httpx.AsyncClient, git_remote: Path) -> None:
    repo = await _repo(api, git_remote)
    branch = (await api.post(f"/api/repos/{repo['id']}/branches", json={})).json()
    url = f"/api/branches/{branch['id']}"
    patched = await api.patch(
        url, json={"agent": "opencode", "loop_enabled": True, "loop_max_iterations": 3}
    )
    assert patched.status_code == 200
    assert patched.json()["agent"] == "opencode"
    assert patched.json()["model"] == "anthropic/claude-sonnet-4-5"
    assert patched.json()["loop_enabled"] is True
    for body in ({"loop_max_iterations": 26}, {"model": "o3"}, {"agent": "x"}, {"name": "y"}):
        response = await api.patch(url, json=body)
        assert response.status_code == 422, body
    current = (await api.get(url)).json()
    assert current["agent"] == "opencode"
    assert current["loop_max_iterations"] == 3


async def test_delete_branch(api: httpx.AsyncClient, git_remote: Path) -> None:
    repo = await _repo(api, git_remote)
    branch = (await api.post(f"/api/repos/{repo['id']}/branches", json={})).json()
    assert (await api.delete(f"/api/branches/{branch['id']}")).status_code == 204
    assert (await api.get(f"/api/branches/{branch['id']}")).status_code == 404
