from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from sqlalchemy import func, select

from db.engine import SessionFactory
from db.models import Branch, Repo


async def _counts(sessions: SessionFactory) -> tuple[int, int]:
    async with sessions() as session:
        repos = await session.scalar(select(func.count()).select_from(Repo))
        branches = await session.scalar(select(func.count()).select_from(Branch))
    return int(repos or 0), int(branches or 0)


async def test_malformed_json_is_400(api: httpx.AsyncClient, sessions: SessionFactory) -> None:
    response = await api.post(
        "/api/repos", content=b'{"url": "/tmp/x"', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "request body is not valid JSON"}
    assert await _counts(sessions) == (0, 0)


async def test_wrong_types_are_422_with_a_readable_detail(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/repos", json={"url": 42})
    assert response.status_code == 422
    assert "url" in response.json()["detail"]
    not_object = await api.post("/api/repos", json=["a"])
    assert not_object.status_code == 422


async def test_two_megabyte_body_is_413_and_changes_nothing(
    api: httpx.AsyncClient, sessions: SessionFactory, git_remote: Path
) -> None:
    huge = b'{"url": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await api.post(
        "/api/repos", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield b"a" * (64 * 1024)

    streamed = await api.post(
        "/api/repos", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await _counts(sessions) == (0, 0)


async def test_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await api.get(f"/api/repos/{missing}")).status_code == 404
    branch = await api.get(f"/api/branches/{missing}")
    assert branch.status_code == 404
    assert branch.json() == {"detail": "branch not found"}
    assert (await api.get("/api/branches/not-a-uuid")).status_code == 422
