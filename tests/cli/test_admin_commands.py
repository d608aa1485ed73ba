from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _upstream(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.require_database_url()}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_created_user_and_token_work_against_the_api(
    settings: Settings, api: httpx.AsyncClient
) -> None:
    created = _upstream(settings, "users", "create", "carol", "--admin")
    assert created.returncode == 0, created.stderr
    assert "carol" in created.stdout and "admin" in created.stdout
    again = _upstream(settings, "users", "create", "carol")  # idempotent
    assert again.returncode == 0, again.stderr

    issued = _upstream(settings, "tokens", "create", "carol", "--name", "ci")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("upa_")

    me = await api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["login"] == "carol"
    assert me.json()["is_admin"] is True
    tokens = await api.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})
    assert [t["name"] for t in tokens.json()] == ["ci"]


def test_token_for_unknown_user_fails_clearly(settings: Settings) -> None:
    result = _upstream(settings, "tokens", "create", "nobody")
    assert result.returncode == 1
    assert "no user with login 'nobody'" in result.stderr


def test_commands_without_a_database_say_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "migrate"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr
