"""CodexParser on output captured from the real binary (see capture_fixtures.py)."""

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
from agents.codex import MAX_OUTPUT_CHARS, CodexAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "codex"
BASE_URL = "http://127.0.0.1:9/v1"
WORKDIR = "/tmp/upstream-codex-fixtures/work"


def fixture(name: str) -> tuple[list[str], int]:
    """A captured turn's output lines and exit code (its last line is `#exit <code>`)."""
    *lines, trailer = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    assert trailer.startswith("#exit ")
    return lines, int(trailer.removeprefix("#exit "))


def parse(lines: list[str], exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
    parser = CodexAdapter().new_parser(base_url=BASE_URL)
    events = [event for line in lines for event in parser.feed(line)]
    trailing, outcome = parser.finish(exit_code)
    return events + trailing, outcome


def parse_fixture(name: str) -> tuple[list[AgentEvent], TurnOutcome]:
    return parse(*fixture(name))


def of_kind(events: list[AgentEvent], kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.kind == kind]


def raw(lines: list[str], kind: str) -> list[dict[str, Any]]:
    decoded = [json.loads(line) for line in lines if line.startswith("{")]
    return [d for d in decoded if d["type"] == kind]


def test_tool_turn_events_in_order() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse_fixture("tool_use")
    thread_id = raw(lines, "thread.started")[0]["thread_id"]
    usage = raw(lines, "turn.completed")[0]["usage"]

    kinds = [SESSION_ID, STDERR, TOOL, TOOL_RESULT, TOKEN, USAGE]
    assert [e.kind for e in events] == [STDERR, *kinds]  # a leading non-JSON warning line
    assert events[1].payload == {"session_id": thread_id}
    assert events[2].payload["content"].startswith("warning: Model metadata for `gpt-5-codex`")
    call = of_kind(events, TOOL)[0]["tool_call"]
    # Without codex's `/bin/bash -lc "…"` wrapper:
    command = f"printf '%s' 'hello world' > {WORKDIR}/hello.txt && wc -c {WORKDIR}/hello.txt"
    assert call == {
        "id": "item_1",
        "tool": "shell",
        "summary": call["summary"],
        "input": {"command": command},
    }
    assert call["summary"] == command[:119] + "…"
    assert of_kind(events, TOOL_RESULT) == [
        {"tool_call_id": "item_1", "output": f"11 {WORKDIR}/hello.txt\n", "is_error": False}
    ]
    assert of_kind(events, USAGE) == [
        {
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cost_usd": None,
        }
    ]
    assert outcome == TurnOutcome(True, "Done.", thread_id, None)


def test_resumed_turn_keeps_the_thread_and_reports_its_running_total() -> None:
    lines, _ = fixture("resume")
    events, outcome = parse_fixture("resume")
    expected = "I see 2 user messages. You said: What did I ask you to do before?"
    assert of_kind(events, TOKEN) == [{"content": expected}]  # whole, never streamed
    assert outcome.succeeded
    assert outcome.final_text == expected
    assert outcome.session_id == parse_fixture("tool_use")[1].session_id
    # Codex reports the thread's total: the first turn's 200 input tokens plus this one's 100.
    assert raw(lines, "turn.completed")[0]["usage"]["input_tokens"] == 300
    assert of_kind(events, USAGE)[0]["input_tokens"] == 300


def test_file_change_is_a_write_announced_once() -> None:
    events, outcome = parse_fixture("file_change")  # apply_patch, with a model codex knows
    path = f"{WORKDIR}/notes.md"
    assert [e.kind for e in events] == [STDERR, SESSION_ID, TOOL, TOOL_RESULT, TOKEN, USAGE]
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call == {
        "id": "item_0",
        "tool": "write",
        "summary": path,
        "input": {"file_path": path, "changes": [{"path": path, "kind": "add"}]},
    }
    assert of_kind(events, TOOL_RESULT) == [
        {"tool_call_id": "item_0", "output": f"add {path}", "is_error": False}
    ]
    assert outcome.succeeded


def test_a_file_change_seen_only_completed_still_opens_a_tool_call() -> None:
    lines, exit_code = fixture("file_change")
    events, _ = parse([ln for ln in lines if '"item.started"' not in ln], exit_code)
    assert [e.kind for e in events if e.kind in (TOOL, TOOL_RESULT)] == [TOOL, TOOL_RESULT]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("invalid_key", "invalid API key (unexpected status 401 Unauthorized: Incorrect API"),
        ("rate_limited", "rate limited by the provider (exceeded retry limit, last status: 429"),
        ("no_quota", "insufficient credit (Quota exceeded. Check your plan and billing"),
        ("resume_unknown", "could not resume the agent's previous conversation (Error: thread/"),
        ("server_error", "We\u2019re currently experiencing high demand"),  # codex's words
    ],
)
def test_failed_turns_carry_one_actionable_error(name: str, message: str) -> None:
    events, outcome = parse_fixture(name)
    errors = of_kind(events, ERROR)
    assert len(errors) == 1
    assert errors[0]["message"].startswith(message)
    assert events[-1].kind == ERROR
    assert not of_kind(events, TOKEN)
    assert not of_kind(events, USAGE)
    assert not outcome.succeeded
    assert outcome.error == errors[0]["message"]
    assert outcome.final_text == ""


def test_unreachable_api_notices_are_stderr_not_errors() -> None:
    # Codex retried forever; the capture's time limit stopped it with SIGTERM (exit 143).
    lines, _ = fixture("unreachable")
    events, outcome = parse_fixture("unreachable")
    notices = [p["content"] for p in of_kind(events, STDERR) if "retrying" in p["content"]]
    assert len(notices) == len(raw(lines, "error")) >= 2  # one per `Reconnecting...` line
    assert notices[0] == (
        f"could not reach the model API at {BASE_URL}; codex keeps retrying "
        "(Reconnecting... waiting for network (Connection failed: error sending request))"
    )
    assert not of_kind(events, ERROR)  # the runner reports its time limit itself
    assert outcome.error == f"could not reach the model API at {BASE_URL}"
    assert not outcome.succeeded


def test_other_retry_notices_and_the_default_base_url() -> None:
    parser = CodexAdapter().new_parser()
    line = json.dumps({"type": "error", "message": "Reconnecting... 1/5 (stream disconnected)"})
    assert parser.feed(line) == [
        AgentEvent(
            STDERR,
            {
                "content": "the model API request failed; codex is retrying "
                "(Reconnecting... 1/5 (stream disconnected))"
            },
        )
    ]
    parser.feed(json.dumps({"type": "error", "message": "Reconnecting... waiting for network"}))
    _, outcome = parser.finish(143)
    assert outcome.error == "could not reach the model API at https://api.openai.com/v1"


def test_cancelled_turn_keeps_its_events_and_stays_quiet() -> None:
    lines, exit_code = fixture("cancelled")
    assert exit_code == 143
    for code in (143, -15):  # as the runner's `$?` records it, or as Popen reports it
        events, outcome = parse(lines, code)
        assert [e.kind for e in events] == [STDERR, SESSION_ID, STDERR, TOOL, TOOL_RESULT]
        assert not outcome.succeeded
        assert outcome.error == "the agent was stopped before it finished"
        assert outcome.session_id is not None
        assert outcome.final_text == ""


def test_vanished_process_fails() -> None:
    lines, _ = fixture("cancelled")
    events, outcome = parse(lines, None)
    assert outcome.error == "the agent process vanished"
    assert events[-1] == AgentEvent(ERROR, {"message": "the agent process vanished"})


def test_exit_zero_without_turn_completed_is_not_success() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse([ln for ln in lines if "turn.completed" not in ln], 0)
    assert not outcome.succeeded
    assert outcome.error == "the agent ended without a result"
    assert events[-1] == AgentEvent(ERROR, {"message": "the agent ended without a result"})
    assert outcome.final_text == "Done."  # what it did say is kept


def test_completed_turn_with_failing_exit_code_is_not_success() -> None:
    lines, _ = fixture("tool_use")
    _, outcome = parse(lines, 1)
    assert not outcome.succeeded
    assert outcome.error == "the agent exited with code 1"


def test_fatal_error_without_turn_failed_explains_the_exit() -> None:
    lines, _ = fixture("rate_limited")
    events, outcome = parse([ln for ln in lines if "turn.failed" not in ln], 1)
    assert outcome.error == (
        "rate limited by the provider (exceeded retry limit, last status: 429 Too Many Requests)"
    )
    assert of_kind(events, ERROR) == [{"message": outcome.error}]
    _, outcome = parse(['{"type":"error","message":"something odd"}'], 1)
    assert outcome.error == "the agent exited with code 1: something odd"


def _with_item(lines: list[str], item_id: str, changes: dict[str, Any]) -> list[str]:
    """The captured turn, with the item `item_id` changed (in both its lines)."""
    changed = []
    for line in lines:
        if line.startswith("{") and f'"id":"{item_id}"' in line:
            data = json.loads(line)
            data["item"] |= changes
            line = json.dumps(data)
        changed.append(line)
    return changed


def test_failed_command_and_output_cap() -> None:
    lines, exit_code = fixture("tool_use")
    big = "z" * (MAX_OUTPUT_CHARS + 10)
    changes = {"exit_code": 2, "aggregated_output": big, "command": "/bin/sh -c 'ls\n-la'"}
    events, _ = parse(_with_item(lines, "item_1", changes), exit_code)
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["input"] == {"command": "ls\n-la"}
    assert call["summary"] == "ls -la"  # one line
    result = of_kind(events, TOOL_RESULT)[0]
    assert result["is_error"] is True
    assert result["output"].endswith("… [truncated 10 characters]")
    # A command that is not a plain shell wrapper stays as it is.
    events, _ = parse(_with_item(lines, "item_1", {"command": "git status"}), exit_code)
    assert of_kind(events, TOOL)[0]["tool_call"]["input"] == {"command": "git status"}


def test_mcp_tool_calls() -> None:
    lines, exit_code = fixture("tool_use")
    item = {
        "type": "mcp_tool_call",
        "server": "docs",
        "tool": "Search_Docs",
        "arguments": {"query": "sse"},
        "result": {"content": [{"type": "text", "text": "found"}, {"type": "image"}]},
        "status": "completed",
    }
    events, _ = parse(_with_item(lines, "item_1", item), exit_code)
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call == {
        "id": "item_1",
        "tool": "search_docs",
        "summary": "docs: search_docs",
        "input": {"query": "sse"},
    }
    assert of_kind(events, TOOL_RESULT)[0] == {
        "tool_call_id": "item_1",
        "output": "found\n[image]",
        "is_error": False,
    }
    failed = item | {"result": None, "error": {"message": "server gone"}, "status": "failed"}
    events, _ = parse(_with_item(lines, "item_1", failed), exit_code)
    assert of_kind(events, TOOL_RESULT)[0]["output"] == "server gone"
    assert of_kind(events, TOOL_RESULT)[0]["is_error"] is True


def test_items_that_are_not_tools_or_replies_are_skipped() -> None:
    lines, exit_code = fixture("tool_use")
    extra = [
        '{"type":"item.completed","item":{"id":"item_7","type":"reasoning","text":"hmm"}}',
        '{"type":"item.started","item":{"id":"item_8","type":"todo_list","items":[]}}',
        '{"type":"item.updated","item":{"id":"item_8","type":"todo_list","items":[]}}',
    ]
    events, outcome = parse([*lines[:4], *extra, *lines[4:]], exit_code)
    assert [e.kind for e in events] == [e.kind for e in parse(lines, exit_code)[0]]
    assert outcome.final_text == "Done."


def test_unexpected_shapes_never_break_the_parser() -> None:
    lines, exit_code = fixture("tool_use")
    odd = [
        '{"type": "item.completed"}',
        '{"type": "turn.completed", "usage": {"input_tokens": {"nested": 1}}}',
        '{"type": "item.started", "item": ["odd"]}',
        "[1, 2, 3]",
        "",
    ]
    events, outcome = parse([*lines[:2], *odd, *lines[2:]], exit_code)
    stderr = [p["content"] for p in of_kind(events, STDERR)]
    assert stderr[1:5] == odd[:4]
    assert outcome.succeeded
    assert outcome.final_text == "Done."
