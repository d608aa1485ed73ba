from __future__ import annotations

import httpx
from sqlalchemy import select

from db.engine import SessionFactory
from db.models import Credential
from tests.conftest import Caller

SECRET = "sk-ant-test-0123456789abcdef-WXYZ"


async def test_put_get_delete_credential(
    api: httpx.AsyncClient, alice: Caller, sessions: SessionFactory
) -> None:
    put = await api.put(
        "/api/me/credentials/anthropic",
        json={"api_key": SECRET, "base_url": "http://127.0.0.1:9999"},
        headers=alice.headers,
    )
    assert put.status_code == 200
    assert put.json()["last4"] == "WXYZ"
    listed = await api.get("/api/me/credentials", headers=alice.headers)
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["provider"] == "anthropic"
    assert item["last4"] == "WXYZ"
    assert item["base_url"].startswith("http://127.0.0.1:9999")
    assert SECRET not in listed.text

    async with sessions() as session:
        row = await session.scalar(select(Credential))
    assert row is not None
    assert SECRET.encode() not in row.ciphertext
    assert row.key_id

    replaced = await api.put(
        "/api/me/credentials/anthropic", json={"api_key": "sk-new-key-1234"}, headers=alice.headers
    )
    assert replaced.json()["last4"] == "1234"
    assert replaced.json()["base_url"] is None

    deleted = await api.delete("/api/me/credentials/anthropic", headers=alice.headers)
    assert deleted.status_code == 204
    assert (await api.get("/api/me/credentials", headers=alice.headers)).json() == []
    again = await api.delete("/api/me/credentials/anthropic", headers=alice.headers)
    assert again.status_code == 404


async def test_unknown_provider_and_bad_keys_are_rejected(
    api: httpx.AsyncClient, alice: Caller
) -> None:
    unknown = await api.put(
        "/api/me/credentials/gitlab", json={"api_key": SECRET}, headers=alice.headers
    )
    assert unknown.status_code == 422
    for body in ({"api_key": ""}, {"api_key": "has space in it"}, {"key": SECRET}):
        response = await api.put("/api/me/credentials/openai", json=body, headers=alice.headers)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], str)
    bad_url = await api.put(
        "/api/me/credentials/openai",
        json={"api_key": SECRET, "base_url": "not a url"},
        headers=alice.headers,
    )
    assert bad_url.status_code == 422
    assert (await api.get("/api/me/credentials", headers=alice.headers)).json() == []


async def test_agents_report_usability_from_credentials(
    api: httpx.AsyncClient, alice: Caller
) -> None:
    before = {a["id"]: a for a in (await api.get("/api/agents", headers=alice.headers)).json()}
    assert set(before) == {"claude-code", "codex", "opencode"}
    assert not any(agent["available"] for agent in before.values())
    await api.put("/api/me/credentials/openai", json={"api_key": SECRET}, headers=alice.headers)
    after = {a["id"]: a for a in (await api.get("/api/agents", headers=alice.headers)).json()}
    assert after["codex"]["available"] is True
    assert after["claude-code"]["available"] is False
    opencode_models = {m["id"]: m["available"] for m in after["opencode"]["models"]}
    assert opencode_models["openai/gpt-5"] is True
    assert opencode_models["anthropic/claude-sonnet-4-5"] is False
    model_ids = {m["id"] for m in after["claude-code"]["models"]}
    assert {"claude-sonnet-4", "claude-opus-4", "claude-3-7-sonnet"} <= model_ids
