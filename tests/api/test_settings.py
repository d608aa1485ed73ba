from __future__ import annotations

import httpx

from tests.conftest import Caller


async def test_settings_defaults_and_patch(api: httpx.AsyncClient, alice: Caller) -> None:
    defaults = await api.get("/api/me/settings", headers=alice.headers)
    assert defaults.json() == {
        "sandbox_auto_stop_minutes": 10,
        "default_loop_max_iterations": 10,
        "default_agent": "claude-code",
        "default_model": None,
    }
    patched = await api.patch(
        "/api/me/settings",
        json={"sandbox_auto_stop_minutes": 5, "default_agent": "codex", "default_model": "o3"},
        headers=alice.headers,
    )
    assert patched.status_code == 200
    assert patched.json()["sandbox_auto_stop_minutes"] == 5
    assert patched.json()["default_model"] == "o3"


async def test_settings_out_of_range_change_nothing(api: httpx.AsyncClient, alice: Caller) -> None:
    for body in (
        {"sandbox_auto_stop_minutes": 4},
        {"sandbox_auto_stop_minutes": 21},
        {"default_loop_max_iterations": 0},
        {"default_loop_max_iterations": 26},
        {"default_agent": "nope"},
        {"default_model": "gpt-4.1-mini"},  # not a claude-code model
        {"unknown_field": 1},
    ):
        response = await api.patch("/api/me/settings", json=body, headers=alice.headers)
        assert response.status_code == 422, body
    current = await api.get("/api/me/settings", headers=alice.headers)
    assert current.json()["sandbox_auto_stop_minutes"] == 10
    assert current.json()["default_agent"] == "claude-code"
