"""ClaudeCodeAdapter.plan and credential_env: pure, no binary needed."""

from __future__ import annotations

import pytest

from agents.base import TurnLaunch
from agents.claude_code import ClaudeCodeAdapter

SESSION = "97ff5a60-7727-4940-a0a6-8db963c0fcec"


def launch(**changes: str | None) -> TurnLaunch:
    base = TurnLaunch(
        model="claude-sonnet-4-5",
        workdir="/sbx/repo",
        home="/sbx/home",
        tools_prefix="/tools/anthropic-ai__claude-code/2.1.197",
        prompt_path="/sbx/turn/prompt.txt",
    )
    return TurnLaunch(**{**base.__dict__, **changes})


def test_headless_command_reads_the_prompt_from_stdin() -> None:
    plan = ClaudeCodeAdapter().plan(launch())
    assert plan.argv == [
        "/tools/anthropic-ai__claude-code/2.1.197/node_modules/.bin/claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
        "--include-partial-messages",
        "--model",
        "claude-sonnet-4-5",
    ]
    assert plan.stdin_path == "/sbx/turn/prompt.txt"
    assert plan.files == {}
    assert plan.env["HOME"] == "/sbx/home"
    assert plan.env["IS_SANDBOX"] == "1"
    assert plan.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert plan.env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert not any("KEY" in name or "TOKEN" in name for name in plan.env)


def test_resume_and_system_prompt() -> None:
    plan = ClaudeCodeAdapter().plan(launch(resume_session_id=SESSION, system_prompt="Be brief."))
    assert plan.argv[-4:] == [
        "--resume",
        SESSION,
        "--append-system-prompt-file",
        "/sbx/home/.upstream/claude-system-prompt.md",
    ]
    assert plan.files == {"/sbx/home/.upstream/claude-system-prompt.md": "Be brief."}


@pytest.mark.parametrize("bad", ["--help", "abc", f"{SESSION} ", ""])
def test_malformed_session_ids_never_reach_argv(bad: str) -> None:
    with pytest.raises(ValueError, match="session id"):
        ClaudeCodeAdapter().plan(launch(resume_session_id=bad))


def test_credential_env() -> None:
    adapter = ClaudeCodeAdapter()
    assert adapter.credential_env("sk-1", None) == {"ANTHROPIC_API_KEY": "sk-1"}
    assert adapter.credential_env("sk-1", "http://h:1") == {
        "ANTHROPIC_API_KEY": "sk-1",
        "ANTHROPIC_BASE_URL": "http://h:1",
    }
