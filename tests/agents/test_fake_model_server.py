"""The fake Anthropic server's protocol and script, without the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.model_server import FakeModelServer

TOOLS = [{"name": "Write", "input_schema": {"type": "object"}}]
SYSTEM = [{"type": "text", "text": "Env:\n - Primary working directory: /repo/x\n"}]


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def _user(text: str) -> dict[str, Any]:
    reminder = {"type": "text", "text": "<system-reminder>ignore me</system-reminder>"}
    return {"role": "user", "content": [reminder, {"type": "text", "text": text}]}


def _ask(
    server: FakeModelServer, messages: list[dict[str, Any]], key: str = "k", stream: bool = True
) -> httpx.Response:
    body = {"model": "m", "messages": messages, "tools": TOOLS, "system": SYSTEM, "stream": stream}
    return httpx.post(
        f"{server.base_url}/v1/messages?beta=true", json=body, headers={"x-api-key": key}
    )


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def test_side_endpoints(server: FakeModelServer) -> None:
    assert httpx.head(server.base_url).status_code == 200
    counted = httpx.post(f"{server.base_url}/v1/messages/count_tokens?beta=true", json={})
    assert counted.json() == {"input_tokens": 42}
    assert httpx.get(f"{server.base_url}/v1/models").json()["data"][0]["id"]
    assert [r.method for r in server.requests] == ["HEAD", "POST", "GET"]
    assert server.message_requests() == []


def test_trigger_tool_call_then_done(server: FakeModelServer) -> None:
    response = _ask(server, [_user("create the file a/b.txt with two words")])
    assert response.headers["content-type"] == "text/event-stream"
    events = _sse(response)
    block = events[1]["content_block"]
    assert block["type"] == "tool_use" and block["name"] == "Write"
    assert json.loads(events[2]["delta"]["partial_json"]) == {
        "file_path": "/repo/x/a/b.txt",
        "content": "two words",
    }
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    result = {"type": "tool_result", "tool_use_id": block["id"], "content": "ok"}
    history = [
        _user("create the file a/b.txt with two words"),
        {"role": "assistant", "content": [{**block, "input": {}}]},
        {"role": "user", "content": [result]},
    ]
    reply = _ask(server, history, stream=False).json()
    assert reply["content"] == [{"type": "text", "text": "Done."}]


def test_echo_streams_in_several_deltas(server: FakeModelServer) -> None:
    history = [
        _user("first"),
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        _user("second  \n"),
        {"role": "system", "content": "Claude 2.1 appends these after the user turn"},
    ]
    events = _sse(_ask(server, history))
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) > 3
    assert "".join(deltas) == "I see 2 user messages. You said: second  \n"
    assert server.message_requests()[0].headers["x-api-key"] == "k"


def test_error_switches_and_slow_replies(server: FakeModelServer) -> None:
    server.invalid_keys.add("bad")
    denied = _ask(server, [_user("hi")], key="bad")
    assert denied.status_code == 401
    assert denied.json()["error"]["message"] == "invalid x-api-key"
    server.rate_limited = True
    assert _ask(server, [_user("hi")]).status_code == 429
    server.rate_limited = False
    server.slow_seconds = 0.5
    started = time.monotonic()
    assert _ask(server, [_user("hi")]).status_code == 200
    assert time.monotonic() - started >= 0.45
