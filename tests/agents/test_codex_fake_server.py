"""The fake server's OpenAI Responses protocol and script, without the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.model_server import FakeModelServer
from tests.fakes.openai_responses import user_texts

EXEC = {"type": "function", "name": "exec_command", "parameters": {"type": "object"}}
PATCH = {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}}
CONTEXT = (
    "<environment_context>\n  <cwd>/repo/x</cwd>\n  <shell>bash</shell>\n</environment_context>"
)


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def _message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def _turn(text: str) -> list[dict[str, Any]]:
    """What codex sends for a new thread: its instructions, its context, the user's text."""
    return [
        _message("developer", "You are Codex."),
        _message("user", CONTEXT),
        _message("user", text),
    ]


def _ask(
    server: FakeModelServer,
    items: list[dict[str, Any]],
    *,
    key: str = "k",
    stream: bool = True,
    tools: tuple[dict[str, Any], ...] = (EXEC,),
) -> httpx.Response:
    body = {"model": "m", "input": items, "tools": list(tools), "stream": stream, "store": False}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{server.base_url}/v1/responses", json=body, headers=headers)


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    events = []
    for block in response.text.split("\n\n"):
        if block.strip():
            name, data = block.split("\n")
            event = json.loads(data.removeprefix("data: "))
            assert name == f"event: {event['type']}"
            events.append(event)
    return events


def test_trigger_runs_one_command_then_done(server: FakeModelServer) -> None:
    response = _ask(server, _turn("create the file a/b.txt with it's $HOME"))
    assert response.headers["content-type"] == "text/event-stream"
    events = _sse(response)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(7))
    call = events[5]["item"]
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {
        "cmd": "printf '%s' 'it'\"'\"'s $HOME' > /repo/x/a/b.txt && wc -c /repo/x/a/b.txt",
        "workdir": "/repo/x",  # from codex's environment context
    }
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == [call]
    assert completed["usage"]["total_tokens"] == 120
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}
    history = [*_turn("create the file a/b.txt with it's $HOME"), call, output]
    reply = _ask(server, history, stream=False).json()
    assert reply["output"][0]["content"][0]["text"] == "Done."


def test_patch_trigger_uses_apply_patch_when_offered(server: FakeModelServer) -> None:
    items = _turn("patch the file n.md with one\ntwo")
    events = _sse(_ask(server, items, tools=(EXEC, PATCH)))
    call = events[-1]["response"]["output"][0]
    assert call["type"] == "custom_tool_call" and call["name"] == "apply_patch"
    assert call["input"] == "*** Begin Patch\n*** Add File: /repo/x/n.md\n+one\n+two\n*** End Patch"
    assert events[3] == {
        "type": "response.custom_tool_call_input.delta",
        "item_id": call["id"],
        "output_index": 0,
        "delta": call["input"],
        "sequence_number": 3,
    }
    # Without apply_patch on offer, the same request gets a shell command.
    call = _ask(server, items, stream=False).json()["output"][0]
    assert call["name"] == "exec_command"
    # After a custom tool's output: the final answer.
    output = {"type": "custom_tool_call_output", "call_id": "c", "output": "ok"}
    reply = _ask(server, [*items, output], stream=False).json()
    assert reply["output"][0]["content"][0]["text"] == "Done."


def test_echo_counts_only_the_users_messages(server: FakeModelServer) -> None:
    history = [
        *_turn("first"),
        _message("assistant", "hi"),
        _message("user", CONTEXT),  # codex repeats its context on resume
        _message("user", "second  \n"),
    ]
    assert user_texts({"input": history}) == ["first", "second  \n"]
    events = _sse(_ask(server, history))
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) > 3
    text = "I see 2 user messages. You said: second  \n"
    assert "".join(deltas) == text
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == text
    # A request whose history already holds a tool call gets no second one.
    call = {"type": "function_call", "name": "exec_command", "arguments": "{}", "call_id": "c"}
    later = [*_turn("x"), call, _message("user", "create the file y with z")]
    reply = _ask(server, later, stream=False).json()
    assert reply["output"][0]["type"] == "message"


def test_side_request_without_tools(server: FakeModelServer) -> None:
    reply = _ask(server, _turn("hi"), stream=False, tools=()).json()
    assert reply["output"][0]["content"][0]["text"] == "Fake title"


def test_error_switches_and_slow_replies(server: FakeModelServer) -> None:
    server.invalid_keys.add("sk-proj-bad-key")
    denied = _ask(server, _turn("hi"), key="sk-proj-bad-key")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    assert denied.json()["error"]["message"].startswith("Incorrect API key provided: sk-****")
    assert "bad-key" not in denied.json()["error"]["message"][:40]
    server.rate_limited = True
    limited = _ask(server, _turn("hi"))
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    server.rate_limited = False
    server.forced_error = (429, "insufficient_quota", "You exceeded your current quota")
    quota = _ask(server, _turn("hi")).json()["error"]
    assert quota == {
        "message": "You exceeded your current quota",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    server.forced_error = None
    server.slow_seconds = 0.5
    started = time.monotonic()
    assert _ask(server, _turn("hi")).status_code == 200
    assert time.monotonic() - started >= 0.45
    recorded = [r for r in server.requests if r.path == "/v1/responses"]
    assert len(recorded) == 4
    assert recorded[0].headers["authorization"] == "Bearer sk-proj-bad-key"
