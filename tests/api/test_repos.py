from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Caller, free_port


async def test_add_local_repo_detects_default_branch(
    api: httpx.AsyncClient, git_remote: Path
) -> None:
    response = await api.post("/api/repos", json={"url": str(git_remote)})
    assert response.status_code == 201, response.text
    repo = response.json()
    assert repo["name"] == "remote"
    assert repo["default_branch"] == "main"
    assert repo["url"] == str(git_remote)
    assert repo["env_keys"] == []
    duplicate = await api.post("/api/repos", json={"url": str(git_remote)})
    assert duplicate.status_code == 409


async def test_unreachable_repo_is_422_and_creates_nothing(api: httpx.AsyncClient) -> None:
    for url in (
        f"http://127.0.0.1:{free_port()}/nothing.git",
        "/nonexistent/repo",
        "ext::sh -c touch% /tmp/pwned",
        "-uhelp",
        "ftp://example.invalid/repo.git",
        "https://user:secret@example.invalid/repo.git",
    ):
        response = await api.post("/api/repos", json={"url": url})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["detail"]
    assert (await api.get("/api/repos")).json() == []


async def test_local_paths_need_an_admin(
    api: httpx.AsyncClient, alice: Caller, git_remote: Path
) -> None:
    response = await api.post("/api/repos", json={"url": str(git_remote)}, headers=alice.headers)
    assert response.status_code == 403
    assert (await api.get("/api/repos", headers=alice.headers)).json() == []


async def test_order_and_env(api: httpx.AsyncClient, tmp_path: Path, git_remote: Path) -> None:
    ids = []
    for name in ("one", "two", "three"):
        target = tmp_path / f"{name}.git"
        target.symlink_to(git_remote)
        ids.append((await api.post("/api/repos", json={"url": str(target)})).json()["id"])
    assert [r["id"] for r in (await api.get("/api/repos")).json()] == ids

    moved = await api.patch(f"/api/repos/{ids[2]}", json={"position": 0})
    assert moved.status_code == 200
    order = [r["id"] for r in (await api.get("/api/repos")).json()]
    assert order == [ids[2], ids[0], ids[1]]
    assert [r["position"] for r in (await api.get("/api/repos")).json()] == [0, 1, 2]

    env = await api.patch(f"/api/repos/{ids[0]}", json={"env": {"TOKEN": "s3cret", "A": "1"}})
    assert env.json()["env_keys"] == ["A", "TOKEN"]
    assert "s3cret" not in env.text
    removed = await api.patch(f"/api/repos/{ids[0]}", json={"env": {"A": None}})
    assert removed.json()["env_keys"] == ["TOKEN"]
    bad = await api.patch(f"/api/repos/{ids[0]}", json={"env": {"1BAD": "x"}})
    assert bad.status_code == 422
    assert (await api.get(f"/api/repos/{ids[0]}")).json()["env_keys"] == ["TOKEN"]

    deleted = await api.delete(f"/api/repos/{ids[1]}")
    assert deleted.status_code == 204
    assert (await api.get(f"/api/repos/{ids[1]}")).status_code == 404


async def test_push_can_be_switched_off(api: httpx.AsyncClient, git_remote: Path) -> None:
    repo = (await api.post("/api/repos", json={"url": str(git_remote)})).json()
    assert (repo["push_enabled"], repo["github_full_name"]) == (True, None)
    patched = await api.patch(f"/api/repos/{repo['id']}", json={"push_enabled": False})
    assert patched.status_code == 200
    assert (await api.get(f"/api/repos/{repo['id']}")).json()["push_enabled"] is False
