"""CodexAdapter.plan, its config.toml and launcher, and credential_env: no codex binary needed."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from agents.base import TurnLaunch
from agents.codex import API_KEY_ENV, BASE_URL_ENV, CodexAdapter, render_toml

THREAD = "01a21e37-89ef-74c1-aca8-6dcddea1ced6"
PREFIX = "/tools/openai__codex/0.171.0"
CONFIG = "/sbx/home/.codex/config.toml"


def launch(**changes: str | None) -> TurnLaunch:
    base = TurnLaunch(
        model="gpt-5-codex",
        workdir="/sbx/repo",
        home="/sbx/home",
        tools_prefix=PREFIX,
        prompt_path="/sbx/turn/prompt.txt",
    )
    return TurnLaunch(**{**base.__dict__, **changes})


def test_headless_command_reads_the_prompt_from_stdin() -> None:
    plan = CodexAdapter().plan(launch())
    assert plan.argv[:2] == ["sh", "-c"]
    assert plan.argv[3:] == [
        "codex-launcher",
        f"{PREFIX}/node_modules/.bin/codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--model",
        "gpt-5-codex",
        "-",
    ]
    assert plan.stdin_path == "/sbx/turn/prompt.txt"
    assert plan.env["HOME"] == "/sbx/home"
    assert plan.env["CODEX_HOME"] == "/sbx/home/.codex"
    assert list(plan.files) == [CONFIG]


def test_config_points_codex_at_a_keyless_custom_provider() -> None:
    plan = CodexAdapter().plan(launch())
    config = tomllib.loads(plan.files[CONFIG])
    assert config == {
        "model_provider": "upstream",
        "check_for_update_on_startup": False,
        "shell_environment_policy": {"exclude": [API_KEY_ENV, BASE_URL_ENV]},
        "analytics": {"enabled": False},
        "feedback": {"enabled": False},
        "model_providers": {
            "upstream": {
                "name": "Upstream (OpenAI-compatible)",
                "base_url": "https://api.openai.com/v1",
                "wire_api": "responses",
                "env_key": API_KEY_ENV,
                "request_max_retries": 0,
                "stream_max_retries": 0,
            }
        },
    }
    # Deterministic: the same turn renders the same bytes (several writers may come later).
    assert CodexAdapter().plan(launch()).files == plan.files


def test_resume_and_system_prompt() -> None:
    rules = 'Answer in French.\n"quotes", \\backslashes\\, \x7f, \x01 and ünïcødé 🚀'
    plan = CodexAdapter().plan(launch(resume_session_id=THREAD, system_prompt=rules))
    assert plan.argv[-3:] == ["resume", THREAD, "-"]
    assert tomllib.loads(plan.files[CONFIG])["developer_instructions"] == rules


@pytest.mark.parametrize("bad", ["--help", "abc", f"{THREAD} ", "", "-"])
def test_malformed_thread_ids_never_reach_argv(bad: str) -> None:
    with pytest.raises(ValueError, match="thread id"):
        CodexAdapter().plan(launch(resume_session_id=bad))


def test_model_cannot_be_an_option() -> None:
    with pytest.raises(ValueError, match="model"):
        CodexAdapter().plan(launch(model="--yolo"))


def test_credential_env_carries_the_key_and_nothing_else_does() -> None:
    adapter = CodexAdapter()
    assert adapter.credential_env("sk-1", None) == {API_KEY_ENV: "sk-1"}
    assert adapter.credential_env("sk-1", "http://h:1/v1") == {
        API_KEY_ENV: "sk-1",
        BASE_URL_ENV: "http://h:1/v1",
    }
    plan = adapter.plan(launch())
    everything = [*plan.argv, *plan.env.values(), *plan.files.values()]
    assert not any("sk-1" in text for text in everything)


def test_render_toml_tables_and_keys() -> None:
    text = render_toml({"a": 1, "t": {"x": True, "odd key": ["p", "q"], "sub": {}}})
    assert tomllib.loads(text) == {"a": 1, "t": {"x": True, "odd key": ["p", "q"], "sub": {}}}
    with pytest.raises(TypeError):
        render_toml({"f": 1.5})


@pytest.fixture
def fake_codex(tmp_path: Path) -> Path:
    """A stand-in binary that prints each argument on its own line, and its stdin."""
    script = tmp_path / "node_modules" / ".bin" / "codex"
    script.parent.mkdir(parents=True)
    script.write_text('#!/bin/sh\nfor a in "$@"; do printf "[%s]\\n" "$a"; done\ncat\n')
    script.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize(
    ("base_url", "extra"),
    [
        (None, []),
        (
            "http://127.0.0.1:1/v1",
            ["-c", "model_providers.upstream.base_url=http://127.0.0.1:1/v1"],
        ),
        # Not a URL anyone would store, but nothing in it may reach a shell parser.
        (
            "http://h/$(id) `x` ;'\"",
            ["-c", "model_providers.upstream.base_url=http://h/$(id) `x` ;'\""],
        ),
    ],
)
def test_launcher_adds_the_base_url_as_one_argument(
    fake_codex: Path, base_url: str | None, extra: list[str]
) -> None:
    adapter = CodexAdapter()
    plan = adapter.plan(launch(tools_prefix=str(fake_codex)))
    env = {"PATH": os.environ["PATH"]} | plan.env | adapter.credential_env("k", base_url)
    done = subprocess.run(plan.argv, env=env, input=b"the prompt", capture_output=True, check=True)
    args = [*extra, *plan.argv[5:]]
    assert done.stdout.decode() == "".join(f"[{a}]\n" for a in args) + "the prompt"
