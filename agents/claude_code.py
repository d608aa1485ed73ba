"""Claude Code (`@anthropic-ai/claude-code`): headless command line and stream-json parser.

Facts this relies on (verified against 2.1.197, see tests/agents/fixtures/claude_code):
- `claude -p` with no positional prompt reads the prompt from stdin, byte for byte (leading and
  trailing whitespace kept), so prompts beyond Linux's 128 KB per-argument limit work.
- `--resume <id>` only finds the session from the same cwd and HOME; the caller keeps both.
- With `--include-partial-messages` each text block arrives twice: as `stream_event` deltas and
  then whole in an `assistant` line (one line per content block). We stream the deltas and emit
  only what the deltas missed from the whole block.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal
from collections import deque
from collections.abc import Callable
from typing import Any

from agents.base import (
    ERROR,
    SESSION_ID,
    STDERR,
    TOKEN,
    TOOL,
    TOOL_RESULT,
    USAGE,
    AgentEvent,
    LaunchPlan,
    LineParser,
    ToolPackage,
    TurnLaunch,
    TurnOutcome,
)
from agents.catalogue import CLAUDE_CODE, AgentSpec
from agents.normalize import (
    as_text,
    canonical_input,
    cap,
    friendly_error,
    tool_summary,
)

PACKAGE = ToolPackage(
    npm_name="@anthropic-ai/claude-code",
    version="2.1.197",
    # npm's bin link; real only once the package's postinstall has run (agents/tools.py).
    binary="node_modules/.bin/claude",
)

# Small: a turn should fail in seconds, not minutes, when the API is down or throttling; the
# user can retry. (Claude's default is 10 retries with exponential backoff.)
MAX_RETRIES = 2

_SESSION_ID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


class ClaudeCodeAdapter:
    spec: AgentSpec = CLAUDE_CODE
    package: ToolPackage | None = PACKAGE

    def plan(self, launch: TurnLaunch) -> LaunchPlan:
        if launch.model.startswith("-"):
            raise ValueError(f"invalid model {launch.model!r}")
        argv = [
            posixpath.join(launch.tools_prefix, PACKAGE.binary),
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",  # mandatory with -p + stream-json
            "--dangerously-skip-permissions",
            "--include-partial-messages",
            "--model",
            launch.model,
        ]
        if launch.resume_session_id is not None:
            # Ids come from the agent's own output; a malformed one must not become an option.
            if not _SESSION_ID_RE.match(launch.resume_session_id):
                raise ValueError(f"invalid Claude session id {launch.resume_session_id!r}")
            argv += ["--resume", launch.resume_session_id]
        files: dict[str, str] = {}
        if launch.system_prompt:
            # A file, like the prompt: it may be large and must not be parsed as options.
            # Appended, so Claude keeps its own tool-use instructions.
            path = posixpath.join(launch.home, ".upstream", "claude-system-prompt.md")
            files[path] = launch.system_prompt
            argv += ["--append-system-prompt-file", path]
        # No positional prompt: claude reads it from stdin (see module docstring).
        return LaunchPlan(argv=argv, stdin_path=launch.prompt_path, env=_env(launch), files=files)

    def credential_env(self, api_key: str, base_url: str | None) -> dict[str, str]:
        env = {"ANTHROPIC_API_KEY": api_key}
        if base_url:
            env["ANTHROPIC_BASE_URL"] = base_url
        return env

    def new_parser(self, *, base_url: str | None = None) -> LineParser:
        return ClaudeCodeParser(base_url=base_url)


def _env(launch: TurnLaunch) -> dict[str, str]:
    home = launch.home
    return {
        "HOME": home,  # sessions live in $HOME/.claude/projects/<cwd-slug>/ (resume needs it)
        "XDG_CONFIG_HOME": posixpath.join(home, ".config"),
        "XDG_CACHE_HOME": posixpath.join(home, ".cache"),
        "XDG_DATA_HOME": posixpath.join(home, ".local", "share"),
        "XDG_STATE_HOME": posixpath.join(home, ".local", "state"),
        "IS_SANDBOX": "1",  # otherwise --dangerously-skip-permissions is refused as root
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no title side request
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_INSTALLATION_CHECKS": "1",
        "DISABLE_COST_WARNINGS": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",  # no plugin fetches
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1",  # nothing outlives the turn
        "CLAUDE_CODE_MAX_RETRIES": str(MAX_RETRIES),
    }


# --- stream-json parsing ------------------------------------------------------------------------

_DEFAULT_BASE_URL = "https://api.anthropic.com"
_TOOL_NAMES = {
    "Bash": "shell",
    "Write": "write",
    "Edit": "edit",
    "MultiEdit": "edit",
    "Read": "read",
    "Glob": "glob",
    "Grep": "grep",
    "WebSearch": "web_search",
}


class ClaudeCodeParser:
    """Claude's stream-json lines -> normalized events. One instance per turn."""

    def __init__(self, *, base_url: str | None = None) -> None:
        self._base_url = base_url or _DEFAULT_BASE_URL
        self._session_id: str | None = None
        self._cwd: str | None = None
        self._has_result = False
        self._result_error: str | None = None
        self._api_error_kind: str | None = None  # from Claude's synthetic error message
        self._last_stderr = ""  # the last non-JSON line: why the CLI refused to start
        # The turn's text, one entry per text block; streamed blocks grow delta by delta.
        self._texts: list[str] = []
        # Per message id: indexes into _texts of streamed blocks not yet matched with their
        # whole block from the `assistant` line (text blocks stream and arrive in one order).
        self._streamed: dict[str, deque[int]] = {}
        self._block_slots: dict[int, int] = {}  # content index -> _texts index, current message
        self._message_id = ""
        self._handlers: dict[object, Callable[[dict[str, Any]], list[AgentEvent]]] = {
            "system": self._system,
            "stream_event": self._stream_event,
            "assistant": self._assistant,
            "user": self._user,
            "result": self._on_result,
        }

    def feed(self, line: str) -> list[AgentEvent]:
        line = line.rstrip("\r")
        if not line.strip():
            return []
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Banners, warnings, crash traces: real information, but never assistant text.
            self._last_stderr = line.strip()[:300]
            return [AgentEvent(STDERR, {"content": cap(line)})]
        handler = self._handlers.get(data.get("type"))
        if handler is None:
            return []  # status lines, future event types: nothing a user needs
        try:
            return handler(data)
        except (AttributeError, KeyError, TypeError, ValueError):
            # A shape this version never produced: show the line rather than fail the turn.
            return [AgentEvent(STDERR, {"content": cap(line)})]

    def finish(self, exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
        error = self._result_error
        if error is None:
            if exit_code is None:
                error = "the agent process vanished"
            elif not self._has_result and exit_code == 0:
                error = "the agent ended without a result"
            elif exit_code in (143, -signal.SIGTERM):
                error = "the agent was stopped before it finished"
            elif exit_code != 0:
                error = f"the agent exited with code {exit_code}"
                if not self._has_result and self._last_stderr:
                    # e.g. "--dangerously-skip-permissions cannot be used with root/sudo …"
                    error += f": {self._last_stderr}"
        # A result error was reported when its line arrived. SIGTERM comes only from the
        # runner's cancel or timeout, which report themselves: no second error event.
        stopped = exit_code in (143, -signal.SIGTERM) and not self._has_result
        quiet = self._result_error is not None or stopped
        events = [_error(error)] if error is not None and not quiet else []
        outcome = TurnOutcome(
            succeeded=error is None,
            final_text="\n\n".join(t for t in self._texts if t),
            session_id=self._session_id,
            error=error,
        )
        return events, outcome

    # - line types -

    def _system(self, data: dict[str, Any]) -> list[AgentEvent]:
        subtype = data.get("subtype")
        if subtype == "init":
            self._cwd = as_text(data.get("cwd")) or None
            return self._session(data)
        if subtype == "api_retry":
            status = data.get("error_status")
            cause = " ".join(str(x) for x in (status, data.get("error")) if x) or "unknown error"
            delay = float(data.get("retry_delay_ms") or 0) / 1000
            attempt, limit = data.get("attempt"), data.get("max_retries")
            text = f"model API request failed ({cause}); retry {attempt}/{limit} in {delay:.1f} s"
            return [AgentEvent(STDERR, {"content": text})]
        return []

    def _session(self, data: dict[str, Any]) -> list[AgentEvent]:
        session_id = as_text(data.get("session_id"))
        if not session_id or session_id == self._session_id:
            return []
        self._session_id = session_id
        return [AgentEvent(SESSION_ID, {"session_id": session_id})]

    def _stream_event(self, data: dict[str, Any]) -> list[AgentEvent]:
        if data.get("parent_tool_use_id"):
            return []  # a subagent's tokens are not the assistant's reply
        event = data.get("event") or {}
        kind = event.get("type")
        if kind == "message_start":
            self._message_id = as_text((event.get("message") or {}).get("id"))
            self._block_slots = {}
            return []
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") != "text":
                return []
            self._texts.append("")
            slot = len(self._texts) - 1
            self._block_slots[event.get("index", -1)] = slot
            self._streamed.setdefault(self._message_id, deque()).append(slot)
            return self._delta(slot, as_text(block.get("text")))
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            slot_or_none = self._block_slots.get(event.get("index", -1))
            if delta.get("type") != "text_delta" or slot_or_none is None:
                return []
            return self._delta(slot_or_none, as_text(delta.get("text")))
        return []

    def _delta(self, slot: int, text: str) -> list[AgentEvent]:
        if not text:
            return []
        self._texts[slot] += text
        return [AgentEvent(TOKEN, {"content": text})]

    def _assistant(self, data: dict[str, Any]) -> list[AgentEvent]:
        message = data.get("message") or {}
        if data.get("error"):
            # Claude's own "API Error: …" message (model "<synthetic>"): reported as an error
            # from the result line, so it must not pose as the assistant's reply.
            self._api_error_kind = as_text(data.get("error"))
            return []
        subagent = bool(data.get("parent_tool_use_id"))
        pending = self._streamed.get(as_text(message.get("id")), deque())
        events: list[AgentEvent] = []
        for block in _blocks(message.get("content")):
            if block.get("type") == "tool_use":
                events.append(self._tool(block))
            elif block.get("type") == "text" and not subagent:
                events += self._whole_text(as_text(block.get("text")), pending)
        return events

    def _whole_text(self, text: str, pending: deque[int]) -> list[AgentEvent]:
        if not pending:  # never streamed (e.g. partial messages off): emit it once, whole
            self._texts.append(text)
            return [AgentEvent(TOKEN, {"content": text})] if text else []
        slot = pending.popleft()
        streamed = self._texts[slot]
        self._texts[slot] = text
        # Emit only what the deltas missed; a mismatch means the deltas were not this block's
        # prefix, and re-sending the whole block would duplicate text on screen.
        rest = text[len(streamed) :] if text.startswith(streamed) else ""
        return [AgentEvent(TOKEN, {"content": rest})] if rest else []

    def _tool(self, block: dict[str, Any]) -> AgentEvent:
        raw_name = as_text(block.get("name"))
        tool = _TOOL_NAMES.get(raw_name, raw_name.lower())
        tool_input = canonical_input(tool, block.get("input"))
        call = {
            "id": as_text(block.get("id")),
            "tool": tool,
            "summary": tool_summary(tool, tool_input, self._cwd),
            "input": tool_input,
        }
        return AgentEvent(TOOL, {"tool_call": call})

    def _user(self, data: dict[str, Any]) -> list[AgentEvent]:
        events = []
        for block in _blocks((data.get("message") or {}).get("content")):
            if block.get("type") == "tool_result":
                payload = {
                    "tool_call_id": as_text(block.get("tool_use_id")),
                    "output": cap(_flatten(block.get("content"))),
                    "is_error": bool(block.get("is_error")),
                }
                events.append(AgentEvent(TOOL_RESULT, payload))
        return events

    def _on_result(self, data: dict[str, Any]) -> list[AgentEvent]:
        usage = data.get("usage") or {}
        input_tokens = sum(
            int(usage.get(key) or 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        payload = {
            "input_tokens": input_tokens,
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cost_usd": float(data.get("total_cost_usd") or 0.0),
        }
        self._has_result = True
        events = [*self._session(data), AgentEvent(USAGE, payload)]
        subtype = as_text(data.get("subtype"))
        if data.get("is_error") or subtype.startswith("error"):
            self._result_error = self._error_message(data, subtype)
            events.append(_error(self._result_error))
        return events

    def _error_message(self, data: dict[str, Any], subtype: str) -> str:
        detail = as_text(data.get("result")) or "; ".join(
            as_text(e) for e in data.get("errors") or []
        )
        friendly = friendly_error(detail, data.get("api_error_status"), self._api_error_kind)
        if friendly == "could not reach the model API":
            friendly += f" at {self._base_url}"
        if friendly is None:
            return detail[:500] or f"the agent failed ({subtype or 'unknown error'})"
        return f"{friendly} ({detail[:500]})" if detail else friendly


def _error(message: str) -> AgentEvent:
    return AgentEvent(ERROR, {"message": message})


def _blocks(content: object) -> list[dict[str, Any]]:
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _flatten(content: object) -> str:
    """Tool result content: a string, or a list of text/image blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in _blocks(content):
        if block.get("type") == "text":
            parts.append(as_text(block.get("text")))
        else:
            parts.append(f"[{block.get('type', 'block')}]")
    return "\n".join(parts)
