"""A scripted fake Anthropic Messages API, good enough to drive the real `claude` CLI offline.

Replies are chosen from request CONTENT, never call counters, so retries, side requests and
resumed conversations all get the answer a real model would plausibly give:

1. no tools offered (a side request such as a title) -> a short text, or `{"title": ...}` JSON;
2. the last user turn carries a `tool_result` -> the final text "Done.";
3. the last user text matches `trigger` ("create the file <path> with <content>") and the
   history holds no tool call yet -> one `Write` tool call;
4. otherwise -> "I see <n> user messages. You said: <last user text>" (proves resume resent
   history, and lets a test compare the prompt byte for byte).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import PurePosixPath
from typing import Any

from tests.fakes import openai_chat, openai_responses
from tests.fakes.http_server import BackgroundHTTPServer

MODEL = "claude-fake-1"
DEFAULT_TRIGGER = re.compile(r"create the file (\S+) with (.+)", re.DOTALL)
# Claude Code states its cwd in the system prompt's environment section.
_CWD_RE = re.compile(r"(?:Primary )?[Ww]orking directory: (/\S+)")
_CHUNK_CHARS = 6


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


def message_text(message: dict[str, Any]) -> str:
    """All text of one message, with Claude Code's `<system-reminder>` blocks left out."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    texts = [
        b.get("text", "")
        for b in content or []
        if b.get("type") == "text" and not b.get("text", "").startswith("<system-reminder>")
    ]
    return "\n".join(texts)


def user_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    # Claude 2.1.x appends `role: "system"` messages after the user turn: filter by role.
    return [m for m in body.get("messages", []) if m.get("role") == "user"]


def _has_block(message: dict[str, Any], kind: str) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == kind for b in content)


class FakeModelServer(BackgroundHTTPServer):
    """`with FakeModelServer() as server:` point ANTHROPIC_BASE_URL at `server.base_url`."""

    def __init__(
        self,
        *,
        trigger: re.Pattern[str] = DEFAULT_TRIGGER,
        default_cwd: str = "/tmp",
        slow_seconds: float = 0.0,
    ) -> None:
        self.trigger = trigger
        self.default_cwd = default_cwd  # resolves relative trigger paths if no cwd is found
        self.slow_seconds = slow_seconds  # spread each streamed reply over this long
        self.invalid_keys: set[str] = set()  # API keys answered with 401
        self.rate_limited = False  # answer every messages request with 429
        # Loop tests: answer "FINISHED" from the N-th text reply on (each loop iteration is one
        # such reply; a counter is the one dependable measure across agents' history formats).
        self.finish_after: int | None = None
        self._text_replies = 0
        # (status, error type, message) to answer every messages request with, e.g. no credit.
        self.forced_error: tuple[int, str, str] | None = None
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), name="fake-model")

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def message_requests(self) -> list[RecordedRequest]:
        """Recorded `POST /v1/messages` calls (not count_tokens), in arrival order."""
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.path.split("?")[0].endswith("/messages")
        ]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def reply_blocks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The content blocks the model answers `body` with (rules in the module docstring)."""
        if not body.get("tools"):
            fmt = (body.get("output_config") or {}).get("format") or {}
            text = '{"title": "Fake title"}' if fmt.get("type") == "json_schema" else "Fake title"
            return [{"type": "text", "text": text}]
        users = user_messages(body)
        last = users[-1] if users else {}
        if _has_block(last, "tool_result"):
            return [{"type": "text", "text": "Done."}]
        said = message_text(last)
        match = self.trigger.search(said)
        used_tools = any(_has_block(m, "tool_use") for m in body.get("messages", []))
        if match and not used_tools:
            path = PurePosixPath(self._cwd(body)) / match.group(1)
            tool_input = {"file_path": str(path), "content": match.group(2)}
            tool_id = f"toolu_{uuid.uuid4().hex[:24]}"
            return [{"type": "tool_use", "id": tool_id, "name": "Write", "input": tool_input}]
        prompts = [m for m in users if not _has_block(m, "tool_result")]
        if self.finish_after is not None:
            with self._lock:
                self._text_replies += 1
                if self._text_replies >= self.finish_after:
                    return [{"type": "text", "text": "FINISHED"}]
            # Not an echo: the continuation prompt itself contains the word FINISHED.
            return [{"type": "text", "text": f"Still working ({len(prompts)} prompts so far)."}]
        return [{"type": "text", "text": f"I see {len(prompts)} user messages. You said: {said}"}]

    def _cwd(self, body: dict[str, Any]) -> str:
        system = body.get("system")
        texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system or []]
        texts += [message_text(m) for m in user_messages(body)]
        for text in texts:
            if found := _CWD_RE.search(text):
                return found.group(1)
        return self.default_cwd


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the CLI's HTTP client expects
    fake: FakeModelServer

    def log_message(self, format: str, *args: Any) -> None:
        return None  # keep test output clean

    def do_HEAD(self) -> None:
        self._record(None)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._record(None)
        if self.path.split("?")[0].endswith("/models"):
            model = {"type": "model", "id": MODEL, "display_name": "Fake", "created_at": "2025"}
            self._json(200, {"data": [model], "has_more": False, "first_id": MODEL})
        else:
            self._json(200, {})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(body)
        route = self.path.split("?")[0]
        if route.endswith("/count_tokens"):
            self._json(200, {"input_tokens": 42})
        elif route.endswith("/messages") and isinstance(body, dict):
            self._messages(body)
        elif route.endswith("/responses") and isinstance(body, dict):
            openai_responses.serve(self, body)
        elif route.endswith("/chat/completions") and isinstance(body, dict):
            openai_chat.serve(self, body)
        else:
            self._json(200, {})

    def _record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(RecordedRequest(self.command, self.path, headers, body))

    def _messages(self, body: dict[str, Any]) -> None:
        key = self.headers.get("x-api-key") or ""
        if key in self.fake.invalid_keys:
            self._error(401, "authentication_error", "invalid x-api-key")
            return
        if self.fake.rate_limited:
            self._error(429, "rate_limit_error", "Number of requests has exceeded your rate limit")
            return
        if self.fake.forced_error is not None:
            self._error(*self.fake.forced_error)
            return
        blocks = self.fake.reply_blocks(body)
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        usage = {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 10}
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", MODEL),
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if body.get("stream"):
            self._stream(message)
        else:
            self._json(200, message)

    def _stream(self, message: dict[str, Any]) -> None:
        events = list(_sse_events(message))
        delay = self.fake.slow_seconds / max(len(events), 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for name, data in events:
                self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                if delay:
                    time.sleep(delay)
            self._chunk(b"")  # the terminating zero-length chunk
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (cancelled turn)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})


def _sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            text = block["text"]
            # Several small deltas, so token streaming is exercised for real.
            chunks = [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)]
            deltas = [{"type": "text_delta", "text": c} for c in chunks]
        else:
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        start_block = {"type": "content_block_start", "index": index, "content_block": opening}
        events.append(("content_block_start", start_block))
        for delta in deltas:
            block_delta = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(("content_block_delta", block_delta))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events
