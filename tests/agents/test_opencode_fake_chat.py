"""The fake server's OpenAI Chat Completions protocol and script, without the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.model_server import FakeModelServer
from tests.fakes.openai_chat import chat_requests

TOOLS = [{"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}}]
SYSTEM = {"role": "system", "content": "You are opencode.\n<env>\n  Working directory: /repo/x\n"}


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def _ask(
    server: FakeModelServer,
    messages: list[dict[str, Any]],
    *,
    key: str = "k",
    stream: bool = True,
    tools: list[dict[str, Any]] | None = TOOLS,
) -> httpx.Response:
    body: dict[str, Any] = {"model": "m", "messages": [SYSTEM, *messages], "stream": stream}
    if tools:
        body["tools"] = tools
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers)


def _chunks(response: httpx.Response) -> list[Any]:
    data = [line.removeprefix("data: ") for line in response.text.splitlines() if line]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def _deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_trigger_streams_one_write_call_then_done(server: FakeModelServer) -> None:
    response = _ask(server, [_user("create the file a/b.txt with two words")])
    assert response.headers["content-type"] == "text/event-stream"
    chunks = _chunks(response)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    deltas = _deltas(chunks)
    assert deltas[0] == {"role": "assistant", "content": ""}
    opening, arguments = deltas[1]["tool_calls"][0], deltas[2]["tool_calls"][0]
    assert opening["index"] == arguments["index"] == 0
    assert opening["id"].startswith("call_")
    assert opening["function"] == {"name": "write", "arguments": ""}
    assert json.loads(arguments["function"]["arguments"]) == {
        "filePath": "/repo/x/a/b.txt",  # in the cwd from OpenCode's system prompt
        "content": "two words",
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 100

    call = {"id": opening["id"], "type": "function", "function": arguments["function"]}
    history = [
        _user("create the file a/b.txt with two words"),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Wrote file successfully."},
    ]
    reply = _ask(server, history, stream=False).json()
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "Done."}
    assert reply["choices"][0]["finish_reason"] == "stop"
    # A later prompt asking again gets text: the history holds a tool call already.
    again = [*history, {"role": "assistant", "content": "Done."}, _user("create the file c with d")]
    assert "tool_calls" not in _ask(server, again, stream=False).json()["choices"][0]["message"]


def test_echo_streams_in_several_deltas(server: FakeModelServer) -> None:
    history = [
        _user("first"),
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "second  \n"},
    ]
    chunks = _chunks(_ask(server, history))
    texts = [str(d["content"]) for d in _deltas(chunks)[1:] if d.get("content")]
    assert len(texts) > 3
    assert "".join(texts) == "I see 2 user messages. You said: second  \n"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    [request] = chat_requests(server)
    assert request.headers["authorization"] == "Bearer k"


def test_usage_only_when_asked_for(server: FakeModelServer) -> None:
    body = {"model": "m", "messages": [_user("hi")], "tools": TOOLS, "stream": True}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body)
    assert all("usage" not in chunk for chunk in _chunks(response))


def test_side_requests_get_a_title(server: FakeModelServer) -> None:
    reply = _ask(server, [_user("Generate a title")], tools=None, stream=False).json()
    assert reply["choices"][0]["message"]["content"] == "Fake title"


def test_error_switches_and_slow_replies(server: FakeModelServer) -> None:
    server.invalid_keys.add("sk-bad-key")
    denied = _ask(server, [_user("hi")], key="sk-bad-key")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key"
    assert denied.json()["error"]["message"] == "Incorrect API key provided: sk-…-key."
    server.rate_limited = True
    limited = _ask(server, [_user("hi")])
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    server.rate_limited = False
    server.forced_error = (429, "insufficient_quota", "You exceeded your current quota")
    assert _ask(server, [_user("hi")]).json()["error"]["type"] == "insufficient_quota"
    server.forced_error = None
    server.slow_seconds = 0.5
    started = time.monotonic()
    assert _ask(server, [_user("hi")]).status_code == 200
    assert time.monotonic() - started >= 0.45
    assert len(chat_requests(server)) == 4
