from __future__ import annotations

import httpx

from tests.conftest import Caller


async def test_local_mode_request_is_local_admin(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/me")
    assert response.status_code == 200
    assert response.json()["login"] == "local"
    assert response.json()["is_admin"] is True
    assert response.json()["auth_method"] == "local"
    assert response.json()["branch_quota"] is None
    assert response.json()["avatar_url"] is None


async def test_bearer_token_identifies_user(api: httpx.AsyncClient, alice: Caller) -> None:
    response = await api.get("/api/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["login"] == "alice"
    assert response.json()["is_admin"] is False
    assert response.json()["auth_method"] == "token"


async def test_invalid_or_malformed_token_is_401_even_in_local_mode(api: httpx.AsyncClient) -> None:
    bad = await api.get("/api/me", headers={"Authorization": "Bearer upa_nope"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "invalid API token"}
    malformed = await api.get("/api/me", headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401


async def test_unauthenticated_non_loopback_request_is_refused(
    api: httpx.AsyncClient,
) -> None:
    transport = api._transport  # the ASGI app under test, reached from another address
    assert isinstance(transport, httpx.ASGITransport)
    remote = httpx.ASGITransport(app=transport.app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=remote, base_url="http://test") as client:
        response = await client.get("/api/me")
    assert response.status_code == 401
    assert "loopback" in response.json()["detail"]


async def test_tokens_are_shown_once_and_can_be_revoked(
    api: httpx.AsyncClient, alice: Caller
) -> None:
    created = await api.post("/api/tokens", json={"name": "laptop"}, headers=alice.headers)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("upa_")
    listed = await api.get("/api/tokens", headers=alice.headers)
    assert all("token" not in item for item in listed.json())
    assert {item["name"] for item in listed.json()} == {"tests", "laptop"}

    me = await api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["login"] == "alice"
    revoked = await api.delete(f"/api/tokens/{created.json()['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    after = await api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 401
