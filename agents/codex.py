"""Codex (`@openai/codex`): headless command line, generated config, and `exec --json` parser.

Facts this relies on (verified against 0.171.0, see tests/agents/fixtures/codex):
- `codex exec … -` reads the whole prompt from stdin, byte for byte (leading and trailing
  whitespace kept), so prompts beyond Linux's 128 KB per-argument limit work. (With a prompt
  argument AND piped stdin, codex would append stdin as a `<stdin>` block instead.)
- State lives in `$CODEX_HOME` (sessions under `sessions/YYYY/MM/DD/rollout-…-<thread>.jsonl`);
  `exec resume <thread_id>` finds the thread only there, so CODEX_HOME stays in the branch's
  home across turns. Unknown ids fail with "no rollout found for thread id …".
- The endpoint is a custom provider in `$CODEX_HOME/config.toml` whose `env_key` names the
  variable holding the key; codex sends it as `Authorization: Bearer`. Custom providers take
  no base URL from the environment, so a credential's base URL is passed as a `-c` override by
  a small launcher (see `_LAUNCHER`): `plan()` never sees the credential.
- Model API unreachable: codex prints `error` "Reconnecting... waiting for network" notices
  forever, even with retries off; only the turn runner's time limit ends such a turn.
- `turn.completed.usage` is the THREAD's running total: a resumed turn reports the earlier
  turns' tokens too (see `CodexParser._turn_completed`).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import signal
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
from agents.catalogue import CODEX, AgentSpec

PACKAGE = ToolPackage(
    npm_name="@openai/codex",
    version="0.171.0",
    # npm's bin link to `bin/codex.js`, a launcher that finds the platform package's binary
    # (needs `node` on PATH; needs no install script).
    binary="node_modules/.bin/codex",
)

PROVIDER_ID = "upstream"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Secret: only ever in the env file (credential_env); config.toml names it, never holds it.
API_KEY_ENV = "UPSTREAM_OPENAI_API_KEY"
# Not secret, but only credential_env knows it; read by _LAUNCHER.
BASE_URL_ENV = "UPSTREAM_OPENAI_BASE_URL"

# `sh -c _LAUNCHER codex-launcher <codex> <args…>`: adds the base URL override when the
# credential has one. The URL goes in as one argv entry (never through shell parsing); codex
# parses `-c` values as TOML and takes a value that is not TOML, like any URL, literally.
_LAUNCHER = f"""codex="$1"; shift
if [ -n "${{{BASE_URL_ENV}:-}}" ]; then
  set -- -c "model_providers.{PROVIDER_ID}.base_url=${BASE_URL_ENV}" "$@"
fi
exec "$codex" "$@"
"""

_SESSION_ID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


class CodexAdapter:
    spec: AgentSpec = CODEX
    package: ToolPackage | None = PACKAGE

    def plan(self, launch: TurnLaunch) -> LaunchPlan:
        if launch.model.startswith("-"):
            raise ValueError(f"invalid model {launch.model!r}")
        args = [
            "exec",
            "--json",
            "--skip-git-repo-check",  # the workdir is a repo, but codex need not insist
            # The sandbox is the isolation; codex's own (bwrap) fails with CODEX_HOME in a
            # temp dir, and an approval prompt would hang a headless run.
            "--dangerously-bypass-approvals-and-sandbox",
            "--model",
            launch.model,
        ]
        if launch.resume_session_id is not None:
            # Ids come from the agent's own output; a malformed one must not become an option.
            if not _SESSION_ID_RE.match(launch.resume_session_id):
                raise ValueError(f"invalid Codex thread id {launch.resume_session_id!r}")
            args += ["resume", launch.resume_session_id]
        args.append("-")  # the prompt: read from stdin (see module docstring)
        codex = posixpath.join(launch.tools_prefix, PACKAGE.binary)
        config_path = posixpath.join(codex_home(launch.home), "config.toml")
        return LaunchPlan(
            argv=["sh", "-c", _LAUNCHER, "codex-launcher", codex, *args],
            stdin_path=launch.prompt_path,
            env=_env(launch),
            files={config_path: render_toml(codex_config(launch.system_prompt))},
        )

    def credential_env(self, api_key: str, base_url: str | None) -> dict[str, str]:
        env = {API_KEY_ENV: api_key}
        if base_url:
            # Used verbatim, so it includes the version path like OPENAI_BASE_URL does
            # (`https://host/v1`): codex appends only `/responses`.
            env[BASE_URL_ENV] = base_url
        return env

    def new_parser(self, *, base_url: str | None = None) -> LineParser:
        return CodexParser(base_url=base_url)


def codex_home(home: str) -> str:
    return posixpath.join(home, ".codex")


def _env(launch: TurnLaunch) -> dict[str, str]:
    home = launch.home
    return {
        "HOME": home,
        "CODEX_HOME": codex_home(home),  # config, sessions (resume needs them), logs
        "XDG_CONFIG_HOME": posixpath.join(home, ".config"),
        "XDG_CACHE_HOME": posixpath.join(home, ".cache"),
        "XDG_DATA_HOME": posixpath.join(home, ".local", "share"),
        "XDG_STATE_HOME": posixpath.join(home, ".local", "state"),
    }


# --- config.toml --------------------------------------------------------------------------------

TomlValue = str | int | bool | list[str] | dict[str, Any]


def codex_config(system_prompt: str | None = None) -> dict[str, TomlValue]:
    """`$CODEX_HOME/config.toml` as data, rendered by `render_toml`.

    The whole file is regenerated for every turn from adapter-owned data, so a turn never
    depends on what an earlier turn (or a person) left there. Future writers (MCP servers:
    `mcp_servers.<name>`) must add their tables to this dict before rendering, never edit the
    file afterwards; the rendering is deterministic (insertion order, no timestamps).
    """
    config: dict[str, TomlValue] = {
        "model_provider": PROVIDER_ID,
        "check_for_update_on_startup": False,
    }
    if system_prompt:
        # Added as a developer message after codex's own instructions (which it needs to use
        # its tools). No CLI flag exists; the file keeps a long prompt off the command line.
        config["developer_instructions"] = system_prompt
    # Codex passes its whole environment to the commands it runs (0.171.0 no longer drops
    # *KEY*/*TOKEN* names by default): keep the key out of them, and so out of their output.
    config["shell_environment_policy"] = {"exclude": [API_KEY_ENV, BASE_URL_ENV]}
    config["analytics"] = {"enabled": False}
    config["feedback"] = {"enabled": False}
    config["model_providers"] = {
        PROVIDER_ID: {
            # Not "OpenAI": that name turns on OpenAI-only features (remote compaction) that
            # an OpenAI-compatible proxy may lack.
            "name": "Upstream (OpenAI-compatible)",
            "base_url": DEFAULT_BASE_URL,  # replaced by the credential's, see _LAUNCHER
            "wire_api": "responses",
            "env_key": API_KEY_ENV,
            # Fail the turn at once instead of retrying: the user can retry, and a retrying
            # turn looks hung. (Codex never retries 429s itself.)
            "request_max_retries": 0,
            "stream_max_retries": 0,
        }
    }
    return config


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def render_toml(config: dict[str, Any]) -> str:
    """TOML for nested dicts of str/int/bool/list[str] (enough for codex's config)."""
    lines = ["# Generated by Upstream Agents for each turn; changes here are overwritten."]
    _render_table(config, [], lines)
    return "\n".join(lines) + "\n"


def _render_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if path and (scalars or not table):
        lines += ["", f"[{'.'.join(_toml_key(p) for p in path)}]"]
    lines += [f"{_toml_key(k)} = {_toml_scalar(v)}" for k, v in scalars.items()]
    for key, value in table.items():
        if isinstance(value, dict):
            _render_table(value, [*path, key], lines)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return f"[{', '.join(_toml_scalar(v) for v in value)}]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


# --- exec --json parsing ------------------------------------------------------------------------

MAX_OUTPUT_CHARS = 64 * 1024  # per tool result, per tool-input string, per stderr line
_SUMMARY_CHARS = 120
_SHELLS = ("bash", "sh", "zsh", "dash")


class CodexParser:
    """Codex's `exec --json` lines -> normalized events. One instance per turn."""

    def __init__(self, *, base_url: str | None = None) -> None:
        self._base_url = base_url or DEFAULT_BASE_URL
        self._session_id: str | None = None
        self._completed = False  # turn.completed seen
        self._turn_error: str | None = None  # from turn.failed
        self._last_error = ""  # the last top-level `error` message (fatal or a notice)
        self._reconnecting = False  # the last top-level `error` was a retry notice
        self._last_stderr = ""  # the last non-JSON line: why the CLI refused to start
        self._texts: list[str] = []  # agent messages, in order
        self._started: set[str] = set()  # item ids announced as tool calls
        self._handlers: dict[object, Callable[[dict[str, Any]], list[AgentEvent]]] = {
            "thread.started": self._thread_started,
            "item.started": self._item_started,
            "item.completed": self._item_completed,
            "turn.completed": self._turn_completed,
            "turn.failed": self._turn_failed,
            "error": self._on_error,
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
            # Warnings and errors before the JSON stream starts: never assistant text.
            self._last_stderr = line.strip()[:300]
            return [AgentEvent(STDERR, {"content": _cap(line)})]
        handler = self._handlers.get(data.get("type"))
        if handler is None:
            return []  # turn.started, item.updated (todo lists), future event types
        try:
            return handler(data)
        except (AttributeError, KeyError, TypeError, ValueError):
            # A shape this version never produced: show the line rather than fail the turn.
            return [AgentEvent(STDERR, {"content": _cap(line)})]

    def finish(self, exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
        stopped = exit_code in (143, -signal.SIGTERM)
        ended = self._completed or self._turn_error is not None
        error = self._turn_error
        if error is None:
            if exit_code is None:
                error = "the agent process vanished"
            elif stopped and self._reconnecting and not ended:
                # Codex never gives up on an unreachable API; this is why the turn hung.
                error = f"could not reach the model API at {self._base_url}"
            elif stopped and not ended:
                error = "the agent was stopped before it finished"
            elif exit_code == 0 and not ended:
                error = "the agent ended without a result"
            elif exit_code != 0:
                error = f"the agent exited with code {exit_code}"
                cause = self._last_error or self._last_stderr
                if not ended and cause:
                    error = self._explain(cause, fallback=f"{error}: {cause}")
        # A turn.failed error was reported when its line arrived. SIGTERM comes only from the
        # runner's cancel or timeout, which report themselves: no second error event.
        quiet = self._turn_error is not None or (stopped and not ended)
        events = [_error(error)] if error is not None and not quiet else []
        outcome = TurnOutcome(
            succeeded=error is None,
            final_text="\n\n".join(t for t in self._texts if t),
            session_id=self._session_id,
            error=error,
        )
        return events, outcome

    # - line types -

    def _thread_started(self, data: dict[str, Any]) -> list[AgentEvent]:
        thread_id = _str(data.get("thread_id"))
        if not thread_id or thread_id == self._session_id:
            return []
        self._session_id = thread_id
        return [AgentEvent(SESSION_ID, {"session_id": thread_id})]

    def _item_started(self, data: dict[str, Any]) -> list[AgentEvent]:
        item = data["item"]
        call = _tool_call(item)
        if call is None or call["id"] in self._started:
            return []
        self._started.add(call["id"])
        return [AgentEvent(TOOL, {"tool_call": call})]

    def _item_completed(self, data: dict[str, Any]) -> list[AgentEvent]:
        item = data["item"]
        kind = item.get("type")
        if kind == "agent_message":
            text = _str(item.get("text"))
            self._texts.append(text)
            return [AgentEvent(TOKEN, {"content": text})] if text else []
        if kind == "error":
            # A warning item (e.g. "Model metadata for `x` not found"), not a failure.
            return [AgentEvent(STDERR, {"content": f"warning: {_cap(_str(item.get('message')))}"})]
        call = _tool_call(item)
        if call is None:
            return []  # reasoning, todo lists: not part of the reply
        events = []
        if call["id"] not in self._started:  # file_change items arrive completed only
            self._started.add(call["id"])
            events.append(AgentEvent(TOOL, {"tool_call": call}))
        output, is_error = _tool_result(item)
        payload = {"tool_call_id": call["id"], "output": _cap(output), "is_error": is_error}
        events.append(AgentEvent(TOOL_RESULT, payload))
        return events

    def _turn_completed(self, data: dict[str, Any]) -> list[AgentEvent]:
        usage = data.get("usage") or {}
        # The thread's running total (a resumed turn includes the earlier turns' tokens): this
        # parser cannot know the earlier total. input_tokens already counts cached tokens.
        # Cost: unknown here (the parser is not told the model, and prices differ by endpoint).
        payload = {
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cost_usd": None,
        }
        self._completed = True  # only once the line proved well-formed
        self._reconnecting = False
        return [AgentEvent(USAGE, payload)]

    def _turn_failed(self, data: dict[str, Any]) -> list[AgentEvent]:
        self._reconnecting = False
        detail = _str((data.get("error") or {}).get("message")) or self._last_error
        self._turn_error = self._explain(detail, fallback=detail[:500] or "the agent failed")
        return [_error(self._turn_error)]

    def _on_error(self, data: dict[str, Any]) -> list[AgentEvent]:
        message = _str(data.get("message"))
        self._last_error = message
        self._reconnecting = message.startswith("Reconnecting")
        if not self._reconnecting:
            return []  # fatal: turn.failed follows with the same message, reported there
        # Codex retries these on its own, forever when the network is down: one readable line
        # per notice; the turn runner's time limit ends the turn.
        if "waiting for network" in message:
            text = f"could not reach the model API at {self._base_url}; codex keeps retrying"
        else:
            text = "the model API request failed; codex is retrying"
        return [AgentEvent(STDERR, {"content": f"{text} ({_cap(message, 500)})"})]

    def _explain(self, detail: str, *, fallback: str) -> str:
        friendly = _friendly_error(detail)
        if friendly is None:
            return fallback
        if friendly == "could not reach the model API":
            friendly += f" at {self._base_url}"
        return f"{friendly} ({detail[:500]})"


def _friendly_error(detail: str) -> str | None:
    """A short, actionable phrase for the failures users can fix themselves."""
    text = detail.lower()
    if _mentions(text, "quota exceeded", "insufficient_quota", "billing"):
        return "insufficient credit"
    if _mentions(text, "401 unauthorized", "incorrect api key", "invalid_api_key", "invalid api"):
        return "invalid API key"
    if _mentions(text, "429", "rate limit", "too many requests", "usage limit"):
        return "rate limited by the provider"
    if _mentions(text, "waiting for network", "error sending request", "connection refused"):
        return "could not reach the model API"
    if "no rollout found" in text:  # its session files are gone, or CODEX_HOME changed
        return "could not resume the agent's previous conversation"
    return None


def _tool_call(item: dict[str, Any]) -> dict[str, Any] | None:
    """The normalized tool call an item stands for, or None if it is not a tool call."""
    kind = item.get("type")
    tool_input: dict[str, Any]
    if kind == "command_execution":
        command = _unwrap_shell(_str(item.get("command")))
        tool, tool_input, summary = "shell", {"command": _cap(command)}, command
    elif kind == "file_change":
        changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
        paths = [_str(c.get("path")) for c in changes]
        tool = "write"
        tool_input = {"file_path": paths[0] if paths else "", "changes": changes}
        summary = ", ".join(paths)
    elif kind == "mcp_tool_call":
        tool = _str(item.get("tool")).lower() or "mcp"
        arguments = item.get("arguments")
        tool_input = arguments if isinstance(arguments, dict) else {"arguments": arguments}
        summary = f"{_str(item.get('server'))}: {tool}"
    elif kind == "web_search":
        query = _str(item.get("query"))
        tool, tool_input, summary = "web_search", {"pattern": query}, query
    else:
        return None
    return {
        "id": _str(item.get("id")),
        "tool": tool,
        "summary": _one_line(summary) or tool,
        "input": tool_input,
    }


def _tool_result(item: dict[str, Any]) -> tuple[str, bool]:
    kind = item.get("type")
    status = _str(item.get("status"))
    failed = status in ("failed", "declined")
    if kind == "command_execution":
        exit_code = item.get("exit_code")
        return _str(item.get("aggregated_output")), failed or exit_code not in (0, None)
    if kind == "file_change":
        changes = [c for c in item.get("changes") or [] if isinstance(c, dict)]
        lines = [f"{_str(c.get('kind'))} {_str(c.get('path'))}" for c in changes]
        return "\n".join(lines), failed
    if kind == "mcp_tool_call":
        error = item.get("error") or {}
        if error:
            return _str(error.get("message")), True
        return _mcp_text(item.get("result")), failed
    return "", failed


def _mcp_text(result: object) -> str:
    if not isinstance(result, dict):
        return ""
    parts = []
    for block in result.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(_str(block.get("text")))
        elif isinstance(block, dict):
            parts.append(f"[{block.get('type', 'block')}]")
    if not parts and result.get("structured_content") is not None:
        parts.append(json.dumps(result["structured_content"]))
    return "\n".join(parts)


def _unwrap_shell(command: str) -> str:
    """`/bin/bash -lc 'ls -a'` -> `ls -a`: codex wraps every command in a login shell."""
    try:
        parts = shlex.split(command)
    except ValueError:
        return command
    if len(parts) == 3 and posixpath.basename(parts[0]) in _SHELLS and parts[1] in ("-lc", "-c"):
        return parts[2]
    return command


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


def _mentions(text: str, *needles: str) -> bool:
    return any(needle in text for needle in needles)


def _error(message: str) -> AgentEvent:
    return AgentEvent(ERROR, {"message": message})


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _cap(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [truncated {len(text) - limit} characters]"
