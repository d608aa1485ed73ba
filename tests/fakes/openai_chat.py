"""The fake model server's OpenAI Chat Completions API (`POST /v1/chat/completions`), enough for
the real `opencode` binary (through `@ai-sdk/openai-compatible`).

Replies follow the same content rules as the Anthropic side (see `model_server`):

1. no tools offered (a side request, e.g. OpenCode's session title) -> a short text;
2. the last message is a tool result (`role: "tool"`) -> the final text "Done.";
3. the last user text matches `trigger` and the history holds no tool call yet -> one call of
   OpenCode's `write` tool (`filePath`, `content`) for the file in the cwd OpenCode runs in;
4. otherwise -> "I see <n> user messages. You said: <last user text>".

OpenCode sends the full history every time: its system prompt (with `Working directory: …` in
its `<env>` block) as `role: "system"`, then user/assistant/tool messages.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a runtime import would be circular: model_server imports this module
    from tests.fakes.model_server import FakeModelServer, RecordedRequest

# OpenCode's file-writing tool; no other agent offers a tool of this name (Codex offers
# `exec_command`, Claude Code `Write`), so a request offering it is OpenCode's.
OPENCODE_WRITE_TOOL = "write"
_CHUNK_CHARS = 6
_CWD_RE = re.compile(r"[Ww]orking directory: (/\S+)")
_USAGE = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 10},
}


def chat_requests(fake: FakeModelServer) -> list[RecordedRequest]:
    """Recorded `POST …/chat/completions` calls, in arrival order."""
    return [
        r
        for r in fake.requests
        if r.method == "POST" and r.path.split("?")[0].endswith("/chat/completions")
    ]


def message_text(message: dict[str, Any]) -> str:
    """All text of one message: a plain string, or the `text` parts of a content list."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = [p for p in content or [] if isinstance(p, dict)]
    return "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")


def user_texts(body: dict[str, Any]) -> list[str]:
    """The text of each user message, oldest first."""
    return [message_text(m) for m in _messages(body) if m.get("role") == "user"]


def reply_message(fake: FakeModelServer, body: dict[str, Any]) -> dict[str, Any]:
    """The assistant message answering `body` (rules in the module docstring): `content` text,
    or one entry in `tool_calls`."""
    if not body.get("tools"):
        return _text("Fake title")
    messages = _messages(body)
    if messages and messages[-1].get("role") == "tool":
        return _text("Done.")
    said = (user_texts(body) or [""])[-1]
    match = fake.trigger.search(said)
    used_tools = any(m.get("tool_calls") for m in messages)
    if match and not used_tools:
        # Absolute, as real models write it; else relative, which OpenCode resolves the same.
        cwd = _cwd(body)
        path = str(PurePosixPath(cwd) / match.group(1)) if cwd else match.group(1)
        name, arguments = opencode_write_call(path, match.group(2))
        call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    return _text(f"I see {len(user_texts(body))} user messages. You said: {said}")


def opencode_write_call(path: str, content: str) -> tuple[str, str]:
    """OpenCode's `write` tool call creating `path` with `content`: (name, JSON arguments).

    Protocol-neutral, for any fake OpenCode may talk to (it uses the Responses API for
    `openai/…` models). A relative `path` resolves in the directory OpenCode runs in, so no cwd
    needs to be found in the request.
    """
    return OPENCODE_WRITE_TOOL, json.dumps({"filePath": path, "content": content})


def serve(handler: Any, body: dict[str, Any]) -> None:
    """Answer one request on `handler` (a `model_server._Handler`, which recorded it already)."""
    fake: FakeModelServer = handler.fake
    # OpenAI keys travel as a bearer token.
    key = (handler.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    if key in fake.invalid_keys:
        message = f"Incorrect API key provided: {key[:3]}…{key[-4:]}."
        _error(handler, 401, "invalid_request_error", message, "invalid_api_key")
        return
    if fake.rate_limited:
        message = "Rate limit reached for requests per min (RPM). Please try again in 20s."
        _error(handler, 429, "requests", message, "rate_limit_exceeded")
        return
    if fake.forced_error is not None:
        status, kind, message = fake.forced_error
        _error(handler, status, kind, message, None)
        return
    reply = reply_message(fake, body)
    finish = "tool_calls" if reply.get("tool_calls") else "stop"
    completion = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "gpt-fake"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
        "usage": _USAGE,
    }
    if body.get("stream"):
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        _stream(handler, stream_chunks(completion, include_usage=usage))
    else:
        handler._json(200, completion)


def stream_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects for a finished `completion`, as OpenAI sends them:
    the role, content or tool-call deltas, the finish reason, then usage (if asked for)."""
    choice = completion["choices"][0]
    message = choice["message"]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    text = message.get("content") or ""
    # Several small deltas, so token streaming is exercised for real.
    deltas += [{"content": text[i : i + _CHUNK_CHARS]} for i in range(0, len(text), _CHUNK_CHARS)]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        opening = {**call, "function": {"name": function["name"], "arguments": ""}}
        deltas.append({"tool_calls": [{"index": index, **opening}]})
        arguments = {"arguments": function["arguments"]}
        deltas.append({"tool_calls": [{"index": index, "function": arguments}]})
    envelope = {k: completion[k] for k in ("id", "created", "model")}
    envelope["object"] = "chat.completion.chunk"
    chunks = [
        {**envelope, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        for delta in deltas
    ]
    finish = {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}
    chunks.append({**envelope, "choices": [finish]})
    if include_usage:
        chunks.append({**envelope, "choices": [], "usage": completion["usage"]})
    return chunks


def _stream(handler: Any, chunks: list[dict[str, Any]]) -> None:
    delay = handler.fake.slow_seconds / max(len(chunks), 1)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for chunk in chunks:
            handler._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            if delay:
                time.sleep(delay)
        handler._chunk(b"data: [DONE]\n\n")
        handler._chunk(b"")  # the terminating zero-length chunk
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client went away (cancelled turn)


def _error(handler: Any, status: int, kind: str, message: str, code: str | None) -> None:
    error = {"message": message, "type": kind, "param": None, "code": code}
    handler._json(status, {"error": error})


def _text(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body.get("messages") or [] if isinstance(m, dict)]


def _cwd(body: dict[str, Any]) -> str | None:
    for message in _messages(body):
        if message.get("role") == "system" and (found := _CWD_RE.search(message_text(message))):
            return found.group(1)
    return None
