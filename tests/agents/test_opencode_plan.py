"""OpenCodeAdapter.plan and credential_env: pure, no binary needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.base import TurnLaunch
from agents.catalogue import OPENCODE
from agents.opencode import OpenCodeAdapter

SESSION = "ses_de1c18094ffeIN61clss1mc6z6"
CONFIG = "/sbx/home/.config/opencode/opencode.json"


def launch(**changes: str | None) -> TurnLaunch:
    base = TurnLaunch(
        model="anthropic/claude-sonnet-4-5",
        workdir="/sbx/repo",
        home="/sbx/home",
        tools_prefix="/tools/opencode-ai/1.18.33",
        prompt_path="/sbx/turn/prompt.txt",
    )
    return TurnLaunch(**{**base.__dict__, **changes})


def config(**changes: str | None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(OpenCodeAdapter().plan(launch(**changes)).files[CONFIG])
    return loaded


def test_headless_command_reads_the_prompt_from_stdin() -> None:
    plan = OpenCodeAdapter().plan(launch())
    assert plan.argv == [
        "/tools/opencode-ai/1.18.33/node_modules/.bin/opencode",
        "run",
        "--format",
        "json",
        "--pure",
        "-m",
        "anthropic/claude-sonnet-4-5",
        "--title",
        "Upstream Agents",
        "--print-logs",
        "--log-level",
        "ERROR",
    ]
    assert plan.stdin_path == "/sbx/turn/prompt.txt"
    assert plan.env["HOME"] == "/sbx/home"
    assert plan.env["XDG_CONFIG_HOME"] == "/sbx/home/.config"
    assert plan.env["XDG_DATA_HOME"] == "/sbx/home/.local/share"  # sessions: resume needs it
    assert plan.env["XDG_CACHE_HOME"] == "/sbx/home/.cache"
    assert plan.env["XDG_STATE_HOME"] == "/sbx/home/.local/state"
    assert plan.env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"
    permissions = json.loads(plan.env["OPENCODE_PERMISSION"])
    assert set(permissions.values()) == {"allow"}
    assert {"bash", "edit", "external_directory", "doom_loop"} <= set(permissions)
    assert not any("KEY" in name or "TOKEN" in name for name in plan.env)
    assert list(plan.files) == [CONFIG]  # in the home, never in the repo


def test_provider_config_names_the_secret_only_by_variable() -> None:
    plan = OpenCodeAdapter().plan(launch())
    assert plan.env["UPSTREAM_PROVIDER_BASE_URL"] == "https://api.anthropic.com"
    assert json.loads(plan.files[CONFIG]) == {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "anthropic/claude-sonnet-4-5",
        "small_model": "anthropic/claude-sonnet-4-5",
        "enabled_providers": ["anthropic"],
        "provider": {
            "anthropic": {
                "env": ["UPSTREAM_PROVIDER_API_KEY"],
                # The credential's base URL is the host, as for Claude Code.
                "options": {"baseURL": "{env:UPSTREAM_PROVIDER_BASE_URL}/v1"},
                "models": {"claude-sonnet-4-5": {"status": "active"}},
            }
        },
    }


@pytest.mark.parametrize(
    ("model", "default_base_url", "base_url_option"),
    [
        ("openai/gpt-5", "https://api.openai.com/v1", "{env:UPSTREAM_PROVIDER_BASE_URL}"),
        ("opencode/grok-code", "https://opencode.ai/zen/v1", "{env:UPSTREAM_PROVIDER_BASE_URL}"),
    ],
)
def test_other_builtin_providers(model: str, default_base_url: str, base_url_option: str) -> None:
    provider_id, model_id = model.split("/")
    plan = OpenCodeAdapter().plan(launch(model=model))
    assert plan.env["UPSTREAM_PROVIDER_BASE_URL"] == default_base_url
    settings = json.loads(plan.files[CONFIG])["provider"][provider_id]
    assert "npm" not in settings  # OpenCode's own package and model metadata
    assert settings["options"]["baseURL"] == base_url_option
    assert settings["models"] == {model_id: {"status": "active"}}


def test_any_other_provider_is_openai_compatible_at_the_credentials_base_url() -> None:
    plan = OpenCodeAdapter().plan(launch(model="litellm/qwen3:32b"))
    assert "UPSTREAM_PROVIDER_BASE_URL" not in plan.env  # no default: the credential has it
    settings = json.loads(plan.files[CONFIG])["provider"]["litellm"]
    assert settings["npm"] == "@ai-sdk/openai-compatible"
    assert settings["models"] == {"qwen3:32b": {"status": "active"}}


def test_every_catalogue_model_plans() -> None:
    for model in OPENCODE.models:
        provider_id = model.id.split("/")[0]
        assert config(model=model.id)["enabled_providers"] == [provider_id]
        assert provider_id == model.credential  # the key we are given is that provider's


def test_resume_and_system_prompt() -> None:
    plan = OpenCodeAdapter().plan(launch(resume_session_id=SESSION, system_prompt="Be brief."))
    assert plan.argv[-5:] == ["--session", SESSION, "--print-logs", "--log-level", "ERROR"]
    assert "--title" not in plan.argv
    path = "/sbx/home/.upstream/opencode-system-prompt.md"
    assert plan.files[path] == "Be brief."
    assert json.loads(plan.files[CONFIG])["instructions"] == [path]


@pytest.mark.parametrize("bad", ["--help", "abc", f"{SESSION} ", "", "ses_a/b"])
def test_malformed_session_ids_never_reach_argv(bad: str) -> None:
    with pytest.raises(ValueError, match="session id"):
        OpenCodeAdapter().plan(launch(resume_session_id=bad))


@pytest.mark.parametrize("bad", ["-m", "claude-sonnet-4-5", "--x/y", "anthropic/", "/m", ""])
def test_malformed_models_never_reach_argv(bad: str) -> None:
    with pytest.raises(ValueError, match="model"):
        OpenCodeAdapter().plan(launch(model=bad))


def test_credential_env() -> None:
    adapter = OpenCodeAdapter()
    assert adapter.credential_env("sk-1", None) == {"UPSTREAM_PROVIDER_API_KEY": "sk-1"}
    assert adapter.credential_env("sk-1", "http://h:1/") == {
        "UPSTREAM_PROVIDER_API_KEY": "sk-1",
        "UPSTREAM_PROVIDER_BASE_URL": "http://h:1",
    }
