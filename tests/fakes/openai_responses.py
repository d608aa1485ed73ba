"""The fake model server's OpenAI Responses API (`POST /v1/responses`), enough for real `codex`.

Replies follow the same content rules as the Anthropic side (see `model_server`):

1. no tools offered (a side request) -> a short text;
2. the last input item is a tool output (`function_call_output`, `custom_tool_call_output`)
   -> the final text "Done.";
3. the last user text matches `trigger` and the history holds no tool call yet -> one
   `exec_command` call whose shell command writes the file (in the cwd codex reported);
   "patch the file <path> with <content>" (`PATCH_TRIGGER`) does the same through codex's
   `apply_patch` tool when the request offers it, so codex reports a `file_change`;
4. otherwise -> "I see <n> user messages. You said: <last user text>".

Codex 0.171.0 sends the full history every time (`store: false`, no `previous_response_id`):
its own instructions as `developer` messages, and context it injects (`<environment_context>`,
AGENTS.md, …) as extra `user` messages, which are not the user's words and are skipped here.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from tests.fakes import openai_chat

if TYPE_CHECKING:  # a runtime import would be circular: model_server imports this module
    from tests.fakes.model_server import FakeModelServer

_CHUNK_CHARS = 6
_TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")
_TOOL_CALLS = ("function_call", "custom_tool_call", "local_shell_call")
# User-role messages codex writes itself: each is one tagged block (`<environment_context>…`)
# or the AGENTS.md preamble. Anything else is the user's text.
_INJECTED = re.compile(
    r"^\s*(<(environment_context|user_instructions|user_shell_command|turn_aborted"
    r"|skills_instructions|permissions instructions)\b|# AGENTS\.md instructions)"
)
_CWD_RE = re.compile(r"<cwd>([^<]+)</cwd>")
# Like the shared trigger, but answered with codex's freeform `apply_patch` tool (a
# `file_change` item) when the request offers it (models codex knows, e.g. gpt-5.5), else
# with the same shell command.
PATCH_TRIGGER = re.compile(r"patch the file (\S+) with (.+)", re.DOTALL)


def user_texts(body: dict[str, Any]) -> list[str]:
    """The text of each user message the person wrote, oldest first (injected context skipped)."""
    texts = []
    for item in _items(body):
        if item.get("role") != "user" or item.get("type", "message") != "message":
            continue
        text = _message_text(item)
        if not _INJECTED.match(text):
            texts.append(text)
    return texts


def reply_items(fake: FakeModelServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The output items the model answers `body` with (rules in the module docstring)."""
    if not body.get("tools"):
        return [_message("Fake title")]
    items = _items(body)
    if items and items[-1].get("type") in _TOOL_OUTPUTS:
        return [_message("Done.")]
    said = (user_texts(body) or [""])[-1]
    patch = PATCH_TRIGGER.search(said)
    match = patch or fake.trigger.search(said)
    used_tools = any(item.get("type") in _TOOL_CALLS for item in items)
    if match and not used_tools:
        cwd = _cwd(body) or fake.default_cwd
        path = str(PurePosixPath(cwd) / match.group(1))
        content = match.group(2)
        if patch and _offers(body, "apply_patch"):
            lines = "".join(f"+{line}\n" for line in content.split("\n"))
            diff = f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch"
            return [_tool_call("custom_tool_call", "apply_patch", input=diff)]
        if _offers(body, openai_chat.OPENCODE_WRITE_TOOL):  # OpenCode, for openai/... models
            name, arguments = openai_chat.opencode_write_call(match.group(1), content)
            return [_tool_call("function_call", name, arguments=arguments)]
        # printf '%s', not echo: the content arrives exactly, without a trailing newline.
        quoted = shlex.quote(path)
        command = f"printf '%s' {shlex.quote(content)} > {quoted} && wc -c {quoted}"
        arguments = json.dumps({"cmd": command, "workdir": cwd})
        return [_tool_call("function_call", "exec_command", arguments=arguments)]
    count = len(user_texts(body))
    return [_message(f"I see {count} user messages. You said: {said}")]


def serve(handler: Any, body: dict[str, Any]) -> None:
    """Answer one request on `handler` (a `model_server._Handler`, which recorded it already)."""
    fake: FakeModelServer = handler.fake
    # OpenAI keys travel as a bearer token (codex sends `Authorization: Bearer <env_key value>`).
    key = (handler.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    if key in fake.invalid_keys:
        masked = f"{key[:3]}{'*' * max(len(key) - 7, 0)}{key[-4:]}"
        message = (
            f"Incorrect API key provided: {masked}. "
            "You can find your API key at https://platform.openai.com/account/api-keys."
        )
        _error(handler, 401, "invalid_request_error", message, "invalid_api_key")
        return
    if fake.rate_limited:
        message = "Rate limit reached for requests per min (RPM). Please try again in 20s."
        _error(handler, 429, "requests", message, "rate_limit_exceeded")
        return
    if fake.forced_error is not None:
        status, kind, message = fake.forced_error
        _error(handler, status, kind, message, kind)  # OpenAI repeats e.g. insufficient_quota
        return
    output = reply_items(fake, body)
    response = {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model", "gpt-fake"),
        "output": output,
        "usage": {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 10},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 120,
        },
    }
    if body.get("stream"):
        _stream(handler, sse_events(response))
    else:
        handler._json(200, response)


def sse_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The streaming events for a finished `response`, in the order OpenAI sends them."""
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    for index, item in enumerate(response["output"]):
        kind = item["type"]
        # Items open empty and fill through deltas; `output_item.done` carries them whole.
        if kind == "message":
            opening = {**item, "status": "in_progress", "content": []}
            body = _text_events(item, index)
        else:
            field = "arguments" if kind == "function_call" else "input"
            prefix = "function_call_arguments" if kind == "function_call" else f"{kind}_input"
            opening = {**item, "status": "in_progress", field: ""}
            where = {"item_id": item["id"], "output_index": index}
            body = [
                {"type": f"response.{prefix}.delta", **where, "delta": item[field]},
                {"type": f"response.{prefix}.done", **where, field: item[field]},
            ]
        added = {"type": "response.output_item.added", "output_index": index, "item": opening}
        done = {"type": "response.output_item.done", "output_index": index, "item": item}
        events += [added, *body, done]
    events.append({"type": "response.completed", "response": response})
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


def _text_events(item: dict[str, Any], index: int) -> list[dict[str, Any]]:
    text = item["content"][0]["text"]
    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
    empty = {"type": "output_text", "text": "", "annotations": []}
    events = [{"type": "response.content_part.added", **where, "part": empty}]
    # Several small deltas, so token streaming is exercised for real.
    for start in range(0, len(text), _CHUNK_CHARS):
        delta = text[start : start + _CHUNK_CHARS]
        events.append({"type": "response.output_text.delta", **where, "delta": delta})
    events.append({"type": "response.output_text.done", **where, "text": text})
    events.append({"type": "response.content_part.done", **where, "part": item["content"][0]})
    return events


def _stream(handler: Any, events: list[dict[str, Any]]) -> None:
    delay = handler.fake.slow_seconds / max(len(events), 1)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for event in events:
            handler._chunk(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            if delay:
                time.sleep(delay)
        handler._chunk(b"")  # the terminating zero-length chunk
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client went away (cancelled turn)


def _error(handler: Any, status: int, kind: str, message: str, code: str | None) -> None:
    error = {"message": message, "type": kind, "param": None, "code": code}
    handler._json(status, {"error": error})


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _tool_call(kind: str, name: str, **payload: str) -> dict[str, Any]:
    """A `function_call` (JSON `arguments`) or a freeform `custom_tool_call` (`input`)."""
    return {
        "type": kind,
        "id": f"{'fc' if kind == 'function_call' else 'ctc'}_{uuid.uuid4().hex[:24]}",
        "call_id": f"call_{uuid.uuid4().hex[:24]}",
        "name": name,
        **payload,
        "status": "completed",
    }


def _offers(body: dict[str, Any], tool: str) -> bool:
    return any(isinstance(t, dict) and t.get("name") == tool for t in body.get("tools") or [])


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):  # the API also takes a bare string as one user message
        return [{"type": "message", "role": "user", "content": raw}]
    return [item for item in raw or [] if isinstance(item, dict)]


def _message_text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = [p for p in content or [] if isinstance(p, dict)]
    return "\n".join(p.get("text", "") for p in parts if p.get("type") in ("input_text", "text"))


def _cwd(body: dict[str, Any]) -> str | None:
    for item in reversed(_items(body)):  # the latest context: a resumed thread may have moved
        if item.get("role") == "user" and (found := _CWD_RE.search(_message_text(item))):
            return found.group(1)
    return None
