"""OpenCodeParser on output captured from the real binary (`python -m tests.agents.opencode_run`).

The retry-forever fixtures (rate_limited, low_credit, unreachable) were captured without our
kill: OpenCode retried until the capture's 20 s timeout sent SIGTERM. The turn runner instead
ends the agent on the parser's fatal error event; tests cut the output there to see that.
"""

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
from agents.opencode import MAX_RETRIES, OpenCodeAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "opencode"
BASE_URL = "http://127.0.0.1:9/v1"
RATE_LIMITED = (
    "rate limited by the provider "
    "(Rate limit reached for requests per min (RPM). Please try again in 20s.)"
)


def fixture(name: str) -> tuple[list[str], int]:
    """A captured turn's output lines and exit code (its last line is `#exit <code>`)."""
    *lines, trailer = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    assert trailer.startswith("#exit ")
    return lines, int(trailer.removeprefix("#exit "))


def parse(
    lines: list[str], exit_code: int | None, base_url: str | None = BASE_URL
) -> tuple[list[AgentEvent], TurnOutcome]:
    parser = OpenCodeAdapter().new_parser(base_url=base_url)
    events = [event for line in lines for event in parser.feed(line)]
    trailing, outcome = parser.finish(exit_code)
    return events + trailing, outcome


def parse_fixture(name: str) -> tuple[list[AgentEvent], TurnOutcome]:
    return parse(*fixture(name))


def of_kind(events: list[AgentEvent], kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.kind == kind]


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_tool_use_turn_events_in_order() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse_fixture("tool_use")
    decoded = json_lines(lines)
    session_id = decoded[0]["sessionID"]
    tool_part = next(d["part"] for d in decoded if d["type"] == "tool_use")

    assert [e.kind for e in events] == [SESSION_ID, TOOL, TOOL_RESULT, TOKEN, USAGE]
    assert events[0].payload == {"session_id": session_id}
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["id"] == tool_part["callID"]
    assert call["id"].startswith("call_")
    assert call["tool"] == "write"
    assert call["summary"] == "hello.txt"  # OpenCode's title: relative to the repo
    assert call["input"] == {
        "file_path": tool_part["state"]["input"]["filePath"],
        "content": "hello world",
    }
    assert of_kind(events, TOOL_RESULT) == [
        {"tool_call_id": call["id"], "output": "Wrote file successfully.", "is_error": False}
    ]
    steps = [d["part"] for d in decoded if d["type"] == "step_finish"]
    assert [s["reason"] for s in steps] == ["tool-calls", "stop"]
    assert of_kind(events, USAGE) == [
        {
            "input_tokens": sum(s["tokens"]["input"] + s["tokens"]["cache"]["read"] for s in steps),
            "output_tokens": sum(s["tokens"]["output"] for s in steps),
            "cost_usd": 0.0,
        }
    ]
    assert of_kind(events, USAGE)[0]["input_tokens"] == 200  # the fake's prompt_tokens, twice
    assert outcome == TurnOutcome(True, "Done.", session_id, None)


def test_resumed_turn_keeps_the_session() -> None:
    events, outcome = parse_fixture("resume")
    expected = "I see 2 user messages. You said: What did I ask you to do before?"
    assert [e.kind for e in events] == [SESSION_ID, TOKEN, USAGE]
    assert of_kind(events, TOKEN) == [{"content": expected}]
    assert outcome.succeeded
    assert outcome.final_text == expected
    assert outcome.session_id == parse_fixture("tool_use")[1].session_id  # --session keeps it


def test_invalid_key_is_an_actionable_error() -> None:
    events, outcome = parse_fixture("invalid_key")
    message = "invalid API key (Incorrect API key provided: sk-…-key.)"
    assert [e.kind for e in events] == [SESSION_ID, STDERR, ERROR, STDERR]
    assert of_kind(events, STDERR)[0] == {
        "content": "opencode stream error: Incorrect API key provided: sk-…-key."
    }
    # Fatal on the log line (the runner may end OpenCode before its own `error` line).
    assert of_kind(events, ERROR) == [{"message": message, "fatal": True}]
    assert outcome == TurnOutcome(False, "", events[0].payload["session_id"], message)


@pytest.mark.parametrize(
    ("name", "message", "fatal_at"),
    [
        ("rate_limited", RATE_LIMITED, 0),
        (
            "low_credit",  # OpenAI's 429 insufficient_quota: retrying cannot help
            "insufficient credit (You exceeded your current quota, please check your plan "
            "and billing details.)",
            0,
        ),
        (
            "unreachable",
            f"could not reach the model API at {BASE_URL} (Cannot connect to API: Unable to "
            "connect. Is the computer able to access the url?)",
            MAX_RETRIES,  # maybe a blip: ended once OpenCode has retried MAX_RETRIES times
        ),
    ],
)
def test_retry_forever_errors_end_the_turn(name: str, message: str, fatal_at: int) -> None:
    lines, exit_code = fixture(name)
    assert all("stream error" in line for line in lines)  # nothing else, ever, on stdout
    parser = OpenCodeAdapter().new_parser(base_url=BASE_URL)
    per_line = [parser.feed(line) for line in lines]
    fatal = [i for i, events in enumerate(per_line) if any(e.kind == ERROR for e in events)]
    assert fatal == [fatal_at]
    assert per_line[fatal_at][-1] == AgentEvent(ERROR, {"message": message, "fatal": True})
    assert [e.kind for e in per_line[0]] == [SESSION_ID, STDERR] + (
        [ERROR] if fatal_at == 0 else []
    )
    trailing, outcome = parser.finish(exit_code)
    assert trailing == []  # reported once, when the line arrived
    assert outcome == TurnOutcome(False, "", per_line[0][0].payload["session_id"], message)

    # As the runner sees it: output ends at the fatal line and the kill exits 143.
    events, killed = parse(lines[: fatal_at + 1], 143)
    assert killed == outcome
    assert [e for e in events if e.kind == ERROR] == [per_line[fatal_at][-1]]


def test_an_overload_is_retried_before_the_turn_ends() -> None:
    # Anthropic's 529 "Overloaded" passes in seconds, unlike a rate limit.
    rate_limited = fixture("rate_limited")[0][0]
    line = rate_limited.replace(
        "Rate limit reached for requests per min (RPM). Please try again in 20s.", "Overloaded"
    )
    parser = OpenCodeAdapter().new_parser(base_url=BASE_URL)
    per_line = [parser.feed(line) for _ in range(MAX_RETRIES + 1)]
    assert [any(e.kind == ERROR for e in events) for events in per_line] == [
        False
    ] * MAX_RETRIES + [True]
    assert per_line[-1][-1].payload == {
        "message": "rate limited by the provider (Overloaded)",
        "fatal": True,
    }


def test_unreachable_default_endpoint_is_named_generically() -> None:
    lines, exit_code = fixture("unreachable")
    _, outcome = parse(lines, exit_code, base_url=None)
    assert outcome.error is not None
    assert outcome.error.startswith("could not reach the model API (Cannot connect")


def test_progress_resets_the_retry_count() -> None:
    errors, _ = fixture("unreachable")
    progress = fixture("tool_use")[0]
    # Transient failures between successful steps never add up to a fatal error.
    lines = [errors[0], errors[1], progress[0], errors[2], *progress[1:]]
    events, outcome = parse(lines, 0)
    assert not any(e.kind == ERROR for e in events)
    assert len(of_kind(events, STDERR)) == 3
    assert outcome.succeeded


def test_side_request_errors_are_never_the_turns_errors() -> None:
    # OpenCode marks its title and other small-model requests; their failures do not matter.
    rate_limited, _ = fixture("rate_limited")
    title_line = rate_limited[0].replace("small=false agent=build", "small=true agent=title")
    lines, exit_code = fixture("tool_use")
    events, outcome = parse([title_line, title_line, title_line, *lines], exit_code)
    assert not of_kind(events, ERROR)
    assert of_kind(events, STDERR) == [{"content": title_line}] * 3
    assert outcome.succeeded


def test_lost_session_on_resume() -> None:
    events, outcome = parse_fixture("resume_unknown")
    message = (
        "the agent exited with code 1: could not resume the agent's previous conversation "
        "(Error: Session not found)"
    )
    assert events == [
        AgentEvent(STDERR, {"content": "Error: Session not found"}),  # colors stripped
        AgentEvent(ERROR, {"message": message}),
    ]
    assert outcome == TurnOutcome(False, "", None, message)


def test_cancelled_turn_keeps_its_tool_calls_and_stays_quiet() -> None:
    events, outcome = parse_fixture("cancelled")
    assert [e.kind for e in events] == [SESSION_ID, TOOL, TOOL_RESULT]
    assert not outcome.succeeded
    assert outcome.error == "the agent was stopped before it finished"
    assert outcome.session_id is not None
    lines, _ = fixture("cancelled")
    assert parse(lines, 143)[1] == outcome  # as the runner's shell reports SIGTERM


def test_rejected_permission_shows_and_leaves_the_turn_unfinished() -> None:
    # Captured without OPENCODE_PERMISSION: why plan() sets it.
    events, outcome = parse_fixture("permission_rejected")
    assert [e.kind for e in events] == [SESSION_ID, STDERR, TOOL, TOOL_RESULT, USAGE, ERROR]
    stderr = of_kind(events, STDERR)[0]["content"]
    assert stderr.startswith("! permission requested: external_directory (")
    assert "\x1b" not in stderr
    result = of_kind(events, TOOL_RESULT)[0]
    assert result["is_error"] is True
    assert result["output"] == "The user rejected permission to use this specific tool call."
    assert (
        outcome.error == "the agent ended without a result (its last step ended with 'tool-calls')"
    )


def test_vanished_process_fails() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse(lines, None)
    assert outcome.error == "the agent process vanished"
    assert events[-1] == AgentEvent(ERROR, {"message": "the agent process vanished"})
    assert outcome.final_text == "Done."


def test_exit_zero_without_a_final_stop_is_not_success() -> None:
    lines, _ = fixture("tool_use")
    events, outcome = parse(lines[:3], 0)  # up to the tool step's step_finish
    assert (
        outcome.error == "the agent ended without a result (its last step ended with 'tool-calls')"
    )
    events, outcome = parse([], 0)
    assert outcome.error == "the agent ended without a result"
    assert events == [AgentEvent(ERROR, {"message": "the agent ended without a result"})]


def test_stop_with_a_failing_exit_code_is_not_success() -> None:
    lines, _ = fixture("tool_use")
    _, outcome = parse([*lines, "panic: something broke"], 2)
    assert not outcome.succeeded
    assert outcome.error == "the agent exited with code 2: panic: something broke"


def _as_tool(lines: list[str], tool: str, tool_input: dict[str, Any], **state: Any) -> list[str]:
    """The captured tool turn, as if the model had called `tool` with `tool_input`."""
    changed = []
    for line in lines:
        data = json.loads(line)
        if data["type"] == "tool_use":
            data["part"]["tool"] = tool
            data["part"]["state"] |= {"input": tool_input, "title": "", **state}
        changed.append(json.dumps(data))
    return changed


def test_shell_tool_with_a_failing_command() -> None:
    lines, exit_code = fixture("tool_use")
    command = "ls missing\n  && echo done"
    metadata = {"exit": 2, "description": "List"}
    changed = _as_tool(
        lines,
        "bash",
        {"command": command, "description": "List"},
        metadata=metadata,
        output="ls: missing",
    )
    events, outcome = parse(changed, exit_code)
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["tool"] == "shell"
    assert call["summary"] == "ls missing && echo done"
    assert call["input"] == {"command": command, "description": "List"}
    assert of_kind(events, TOOL_RESULT)[0] == {
        "tool_call_id": call["id"],
        "output": "ls: missing",
        "is_error": True,
    }
    assert outcome.succeeded  # a failed command is the model's business


@pytest.mark.parametrize(
    ("tool", "tool_input", "canonical", "summary", "canonical_input"),
    [
        ("read", {"filePath": "/r/a.py"}, "read", "/r/a.py", {"file_path": "/r/a.py"}),
        ("grep", {"pattern": "TODO", "path": "/src"}, "grep", "TODO in /src", None),
        ("glob", {"pattern": "**/*.py"}, "glob", "**/*.py", None),
        ("websearch", {"query": "python"}, "web_search", "python", {"pattern": "python"}),
        ("apply_patch", {"patchText": "*** Begin Patch"}, "edit", "*** Begin Patch", None),
        ("todowrite", {"todos": []}, "todowrite", "todowrite", None),
    ],
)
def test_other_tools(
    tool: str,
    tool_input: dict[str, Any],
    canonical: str,
    summary: str,
    canonical_input: dict[str, Any] | None,
) -> None:
    lines, exit_code = fixture("tool_use")
    events, _ = parse(_as_tool(lines, tool, tool_input), exit_code)
    call = of_kind(events, TOOL)[0]["tool_call"]
    assert call["tool"] == canonical
    assert call["summary"] == summary
    assert call["input"] == (canonical_input or tool_input)


def test_unexpected_shapes_never_break_the_parser() -> None:
    lines, exit_code = fixture("tool_use")
    odd = [
        '{"type": "text", "sessionID": "ses_x1", "part": "just a string"}',
        '{"type": "step_finish", "part": {"tokens": {"input": "many"}}}',
        '{"type": "reasoning", "part": {"text": "thinking"}}',
        "timestamp=2026 level=ERROR message=oops",
        'timestamp=2026 level=WARN message="unterminated',
        "[1, 2, 3]",
    ]
    events, outcome = parse([*lines[:2], *odd, *lines[2:]], exit_code)
    assert [p["content"] for p in of_kind(events, STDERR)] == [
        odd[0],
        odd[1],
        odd[3],
        odd[4],
        odd[5],
    ]
    assert outcome.succeeded
    assert outcome.final_text == "Done."
