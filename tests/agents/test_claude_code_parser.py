"""ClaudeCodeParser on output captured from the real binary (see capture_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.base import (
    ERROR,
    SESSION_ID,
    STDERR,
    TOKEN,
    TOOL,
    TOOL_RESULT,
    USAGE,
    AgentEvent,
    TurnOutcome,
)
from agents.claude_code import ClaudeCodeAdapter
from agents.normalize import MAX_OUTPUT_CHARS

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
BASE_URL = "http://127.0.0.1:9"


def fixture(name: str) -> tuple[list[str], int]:
    """A captured turn's output lines and exit code (its last line is `#exit <code>`)."""
    *lines, trailer = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    assert trailer.startswith("#exit ")
    return lines, int(trailer.removeprefix("#exit "))


def parse(lines: list[str], exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
    parser = ClaudeCodeAdapter().new_parser(base_url=BASE_URL)
    events = [event for line in lines for event in parser.feed(line)]
    trailing, outcome = parser.finish(exit_code)
    return events + trailing, outcome


def parse_fixture(name: str) -> tuple[list[AgentEvent], TurnOutcome]:
    return parse(*fixture(name))


def of_kind(events: list[AgentEvent], kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.kind == kind]


def tokens(events: list[AgentEvent]) -> str:
    return "".join(p["content"] for p in of_kind(events, TOKEN))


def raw_lines(lines: list[str], kind: str) -> list[dict[str, Any]]:
    decoded = [json.loads(line) for line in lines if line.startswith("{")]
    return [d for d in decoded if d["type"] == kind]


def test_tool_use_turn_events_in_order() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse_fixture("tool_use")
    init = raw_lines(lines, "system")[0]
    result = raw_lines(lines, "result")[0]

    assert [e.kind for e in events] == [SESSION_ID, TOOL, TOOL_RESULT, TOKEN, USAGE]
    assert events[0].payload == {"session_id": init["session_id"]}
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["id"].startswith("toolu_")
    assert call["tool"] == "write"
    assert call["summary"] == "hello.txt"  # relative to the cwd Claude reported
    assert call["input"] == {"file_path": f"{init['cwd']}/hello.txt", "content": "hello world"}
    tool_result = of_kind(events, TOOL_RESULT)[0]
    assert tool_result["tool_call_id"] == call["id"]
    assert tool_result["is_error"] is False
    assert tool_result["output"].startswith("File created successfully")
    usage = result["usage"]
    assert of_kind(events, USAGE) == [
        {
            "input_tokens": usage["input_tokens"]
            + usage["cache_creation_input_tokens"]
            + usage["cache_read_input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cost_usd": result["total_cost_usd"],
        }
    ]
    assert outcome == TurnOutcome(True, "Done.", init["session_id"], None)


def test_resumed_turn_streams_tokens_without_duplicates() -> None:
    events, outcome = parse_fixture("resume")
    expected = "I see 2 user messages. You said: What did I ask you to do before?"
    assert len(of_kind(events, TOKEN)) > 5  # real deltas, not one block
    assert tokens(events) == expected  # the whole `assistant` block added nothing twice
    assert outcome.succeeded
    assert outcome.final_text == expected
    tool_use_session = parse_fixture("tool_use")[1].session_id
    assert outcome.session_id == tool_use_session  # --resume keeps the session id


def test_text_block_without_deltas_is_emitted_once() -> None:
    # Output without --include-partial-messages is the same minus the stream_event lines.
    lines, exit_code = fixture("resume")
    events, outcome = parse([ln for ln in lines if '"stream_event"' not in ln], exit_code)
    assert of_kind(events, TOKEN) == [{"content": outcome.final_text}]
    assert outcome.succeeded


@pytest.mark.parametrize(
    ("name", "message", "retries"),
    [
        ("invalid_key", "invalid API key (Invalid API key", 2),
        ("rate_limited", "rate limited by the provider (API Error: Request rejected (429)", 2),
        ("low_credit", "insufficient credit (Credit balance is too low)", 0),
        ("unreachable", f"could not reach the model API at {BASE_URL} (API Error: Unable", 2),
        ("resume_unknown", "could not resume the agent's previous conversation (No conv", 0),
    ],
)
def test_failed_turns_carry_an_actionable_error(name: str, message: str, retries: int) -> None:
    events, outcome = parse_fixture(name)
    errors = of_kind(events, ERROR)
    assert len(errors) == 1
    assert errors[0]["message"].startswith(message)
    assert events[-1].kind == ERROR  # after usage, from the result line; nothing trailing
    assert of_kind(events, USAGE)[0]["cost_usd"] == 0
    assert not of_kind(events, TOKEN)  # Claude's synthetic "API Error" text is not a reply
    retry_lines = [p for p in of_kind(events, STDERR) if "retry" in p["content"]]
    assert len(retry_lines) == retries
    assert not outcome.succeeded
    assert outcome.error == errors[0]["message"]
    assert outcome.final_text == ""


def test_retry_lines_become_readable_stderr() -> None:
    events, _ = parse_fixture("rate_limited")
    first = of_kind(events, STDERR)[0]["content"]
    assert first.startswith("model API request failed (429 rate_limit); retry 1/2 in ")


def test_non_json_lines_are_stderr_not_text() -> None:
    events, _ = parse_fixture("resume_unknown")
    assert events[0] == AgentEvent(
        STDERR,
        {"content": "No conversation found with session ID: 00000000-0000-4000-8000-000000000000"},
    )
    lines, exit_code = fixture("tool_use")
    noisy = ["Welcome to Claude Code!", *lines[:3], "warning: something odd", *lines[3:], ""]
    events, outcome = parse(noisy, exit_code)
    assert [p["content"] for p in of_kind(events, STDERR)] == [
        "Welcome to Claude Code!",
        "warning: something odd",
    ]
    assert tokens(events) == outcome.final_text == "Done."


def test_cancelled_turn_keeps_streamed_text_and_stays_quiet() -> None:
    events, outcome = parse_fixture("cancelled")
    assert [e.kind for e in events] == [SESSION_ID, TOKEN]
    assert outcome.final_text == tokens(events) == "I see "
    assert not outcome.succeeded
    assert outcome.error == "the agent was stopped before it finished"
    assert outcome.session_id is not None


def test_vanished_process_fails() -> None:
    lines, _ = fixture("cancelled")
    events, outcome = parse(lines, None)
    assert outcome.error == "the agent process vanished"
    assert of_kind(events, ERROR) == [{"message": "the agent process vanished"}]


def test_exit_zero_without_result_is_not_success() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse([ln for ln in lines if '"type":"result"' not in ln], 0)
    assert not outcome.succeeded
    assert outcome.error == "the agent ended without a result"
    assert events[-1] == AgentEvent(ERROR, {"message": "the agent ended without a result"})


def test_success_result_with_failing_exit_code_is_not_success() -> None:
    lines, _ = fixture("tool_use")
    _, outcome = parse(lines, 1)
    assert not outcome.succeeded
    assert outcome.error == "the agent exited with code 1"
    _, outcome = parse(lines, None)
    assert outcome.error == "the agent process vanished"


def _with_tool(lines: list[str], name: str, tool_input: dict[str, Any], content: Any) -> list[str]:
    """The captured tool turn, as if the model had called `name` and got `content` back."""
    changed = []
    for line in lines:
        data = json.loads(line)
        if data["type"] == "assistant" and data["message"]["content"][0]["type"] == "tool_use":
            data["message"]["content"][0] |= {"name": name, "input": tool_input}
        elif data["type"] == "user":
            data["message"]["content"][0] |= {"content": content, "is_error": True}
        changed.append(json.dumps(data))
    return changed


def test_tool_names_summaries_and_output_cap() -> None:
    lines, exit_code = fixture("tool_use")
    command = "cat <<'EOF' > x\n" + "y" * 300 + "\nEOF"
    content = [{"type": "text", "text": "z" * (MAX_OUTPUT_CHARS + 10)}, {"type": "image"}]
    events, _ = parse(_with_tool(lines, "Bash", {"command": command}, content), exit_code)
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["tool"] == "shell"
    assert call["input"] == {"command": command}
    assert "\n" not in call["summary"]
    assert call["summary"].startswith("cat <<'EOF' > x yyy")
    assert len(call["summary"]) == 120
    result = of_kind(events, TOOL_RESULT)[0]
    assert result["is_error"] is True
    assert len(result["output"]) < MAX_OUTPUT_CHARS + 100
    assert result["output"].endswith("… [truncated 18 characters]")  # 10 z + "\n[image]"


@pytest.mark.parametrize(
    ("name", "tool_input", "tool", "summary"),
    [
        ("Grep", {"pattern": "TODO", "path": "/src"}, "grep", "TODO in /src"),
        ("Glob", {"pattern": "**/*.py"}, "glob", "**/*.py"),
        ("WebSearch", {"query": "python 3.11"}, "web_search", "python 3.11"),
        ("WebFetch", {"url": "https://example.com", "prompt": "x"}, "webfetch", "https://ex"),
        ("TodoWrite", {"todos": []}, "todowrite", "todowrite"),
    ],
)
def test_other_tools(name: str, tool_input: dict[str, Any], tool: str, summary: str) -> None:
    lines, exit_code = fixture("tool_use")
    events, _ = parse(_with_tool(lines, name, tool_input, "ok"), exit_code)
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["tool"] == tool
    assert call["summary"].startswith(summary)
    if name == "WebSearch":
        assert call["input"] == {"pattern": "python 3.11"}  # canonical key
    if name == "Grep":
        assert call["input"] == tool_input  # a search root is not a file_path


def test_a_cli_that_refuses_to_start_says_why() -> None:
    events, outcome = parse_fixture("root_refused")  # as root without IS_SANDBOX=1
    assert [e.kind for e in events] == [STDERR, ERROR]
    assert outcome.error == (
        "the agent exited with code 1: --dangerously-skip-permissions cannot be used with "
        "root/sudo privileges for security reasons"
    )


def test_unexpected_shapes_never_break_the_parser() -> None:
    lines, exit_code = fixture("tool_use")
    odd = [
        '{"type": "result", "usage": {"input_tokens": {"nested": 1}}}',
        '{"type": "stream_event", "event": ["odd"]}',
        '{"type": "assistant", "message": {"content": "just a string"}}',
        "[1, 2, 3]",
    ]
    events, outcome = parse([*lines[:2], *odd, *lines[2:]], exit_code)
    assert [p["content"] for p in of_kind(events, STDERR)] == [odd[0], odd[1], odd[3]]
    assert outcome.succeeded
    assert tokens(events) == outcome.final_text == "Done."
