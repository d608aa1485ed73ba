"""OpenCode (`opencode-ai`): headless command line, provider config and `--format json` parser.

Facts this relies on (verified against 1.18.33, see tests/agents/fixtures/opencode):
- `opencode run` with no positional message takes the whole message from stdin when stdin is
  not a TTY, byte for byte, so prompts beyond Linux's 128 KB per-argument limit work. (A
  positional message is worse than too long: arguments containing spaces are re-joined wrapped
  in double quotes, so the model would not see the user's bytes.)
- `--session <ses_…>` resumes from the sqlite state in `$XDG_DATA_HOME/opencode`; the caller
  keeps the branch's home, and so the XDG dirs, across turns.
- On a 429, an overload or an unreachable API OpenCode retries forever and prints nothing on
  stdout; only `--print-logs` ERROR lines (`message="stream error"`) show it. The parser turns
  those into an error event with `"fatal": true`, on which the turn runner ends the process.
- Output is one JSON object per line, `{"type", "timestamp", "sessionID", "part" | "error"}`;
  there is no result line: a last `step_finish` with reason "stop" plus exit 0 is success.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
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
from agents.catalogue import OPENCODE, AgentSpec

# Normalization shared with Claude Code (tool inputs, summaries, caps, error phrases).
from agents.normalize import as_text, canonical_input, cap, friendly_error, mentions, tool_summary

PACKAGE = ToolPackage(
    npm_name="opencode-ai",
    version="1.18.33",
    # npm's bin link to `opencode-ai/bin/opencode.exe`, a stub until the postinstall hard-links
    # the platform binary over it (it picks the AVX2 or baseline build for this CPU, which the
    # platform packages' own paths would not). agents/tools.py runs scripts and checks it.
    binary="node_modules/.bin/opencode",
)

# Stream errors in a row (one per OpenCode retry) before the turn is ended; as Claude's
# retries: a turn should fail in seconds, not minutes, when the API is down. Rate limits end
# it at the first one.
MAX_RETRIES = 2

# The config names these variables; the key and base URL reach them only through the secret
# env file (`credential_env`), never argv or files. One name whatever the provider, as
# `credential_env` is not told the model.
API_KEY_ENV = "UPSTREAM_PROVIDER_API_KEY"
BASE_URL_ENV = "UPSTREAM_PROVIDER_BASE_URL"

# Given to new sessions: otherwise OpenCode asks the model for a title in an extra request,
# billed to the user, on every new session.
SESSION_TITLE = "Upstream Agents"

_SESSION_ID_RE = re.compile(r"^ses_[A-Za-z0-9]+$")
_MODEL_RE = re.compile(r"^([a-z0-9][a-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._:/-]*)$")


@dataclass(frozen=True)
class _Provider:
    # The credential's base URL when it has none, in the convention the other agents use for
    # the same credential (Claude: no /v1 for Anthropic; Codex: with /v1 for OpenAI) ...
    default_base_url: str | None
    # ... and what the AI SDK needs appended to it.
    api_suffix: str = ""


# OpenCode's own providers, by the model id's prefix; their AI SDK package and model metadata
# (limits, prices) come from its bundled model list. OpenAI goes through the Responses API, as
# Codex does with the same credential.
PROVIDERS: dict[str, _Provider] = {
    "anthropic": _Provider("https://api.anthropic.com", "/v1"),
    "openai": _Provider("https://api.openai.com/v1"),
    "opencode": _Provider("https://opencode.ai/zen/v1"),  # OpenCode Zen
}
# Any other prefix: an OpenAI-compatible Chat Completions endpoint at the credential's base URL
# (the tests' fake server; a catalogue entry away from e.g. a LiteLLM proxy).
_CUSTOM = _Provider(None)
_CUSTOM_NPM = "@ai-sdk/openai-compatible"  # bundled in the binary, like all AI SDK providers

# Everything allowed: in `opencode run` an "ask" is auto-rejected, so defaults such as
# `external_directory`, `doom_loop` and reading `.env` files would fail tool calls for no one to
# approve. The sandbox is the isolation. `question` stays denied (no one can answer).
PERMISSIONS = {
    "bash": "allow",
    "edit": "allow",
    "read": "allow",
    "webfetch": "allow",
    "external_directory": "allow",
    "doom_loop": "allow",
}


class OpenCodeAdapter:
    spec: AgentSpec = OPENCODE
    package: ToolPackage | None = PACKAGE

    def plan(self, launch: TurnLaunch) -> LaunchPlan:
        match = _MODEL_RE.match(launch.model)
        if match is None:
            raise ValueError(f"invalid OpenCode model {launch.model!r} (want provider/model)")
        provider_id = match.group(1)
        provider = PROVIDERS.get(provider_id, _CUSTOM)
        argv = [
            posixpath.join(launch.tools_prefix, PACKAGE.binary),
            "run",
            "--format",
            "json",
            "--pure",  # no plugins: no npm registry queries at start
            "-m",
            launch.model,
        ]
        if launch.resume_session_id is not None:
            # Ids come from the agent's own output; a malformed one must not become an option.
            if not _SESSION_ID_RE.match(launch.resume_session_id):
                raise ValueError(f"invalid OpenCode session id {launch.resume_session_id!r}")
            argv += ["--session", launch.resume_session_id]
        else:
            argv += ["--title", SESSION_TITLE]
        # Stderr, merged into the output by the runner: the only sign of retry-forever errors.
        argv += ["--print-logs", "--log-level", "ERROR"]
        config_dir = posixpath.join(launch.home, ".config", "opencode")
        files: dict[str, str] = {}
        instructions: list[str] = []
        if launch.system_prompt:
            # No system-prompt flag; instruction files are appended to OpenCode's system
            # prompt, so the rules stay out of the conversation history.
            path = posixpath.join(launch.home, ".upstream", "opencode-system-prompt.md")
            files[path] = launch.system_prompt
            instructions.append(path)
        config = _config(launch.model, provider_id, match.group(2), provider, instructions)
        files[posixpath.join(config_dir, "opencode.json")] = json.dumps(config, indent=2) + "\n"
        env = _env(launch)
        if provider.default_base_url is not None:
            env[BASE_URL_ENV] = provider.default_base_url  # the env file overrides it
        # No positional message: opencode reads it from stdin (see module docstring).
        return LaunchPlan(argv=argv, stdin_path=launch.prompt_path, env=env, files=files)

    def credential_env(self, api_key: str, base_url: str | None) -> dict[str, str]:
        env = {API_KEY_ENV: api_key}
        if base_url:
            env[BASE_URL_ENV] = base_url.rstrip("/")
        return env

    def new_parser(self, *, base_url: str | None = None) -> LineParser:
        return OpenCodeParser(base_url=base_url)


def _config(
    model: str, provider_id: str, model_id: str, provider: _Provider, instructions: list[str]
) -> dict[str, Any]:
    """The global `opencode.json` (a repo's own opencode.json still merges over it)."""
    settings: dict[str, Any] = {
        # The key is read from this variable. Not `"apiKey": "{env:…}"`: OpenCode substitutes
        # that into the file's text, so a key with a quote breaks the JSON, and the config
        # error it prints (into the turn's output) shows the file with the key in it.
        "env": [API_KEY_ENV],
        # Textual substitution is fine for a URL (no quotes or backslashes in one).
        "options": {"baseURL": f"{{env:{BASE_URL_ENV}}}{provider.api_suffix}"},
        # Declared so that ids missing from the bundled model list resolve, and "active"
        # because that list drops models it marks deprecated (e.g. opencode/grok-code): the
        # catalogue decides what users may pick. Known models keep their limits and prices.
        "models": {model_id: {"status": "active"}},
    }
    if provider is _CUSTOM:
        settings |= {"npm": _CUSTOM_NPM, "name": provider_id}
    config: dict[str, Any] = {
        # Present, so OpenCode does not rewrite the file to add it.
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": model,
        # Side requests use the chosen model, not a cheaper sibling OpenCode would pick (which
        # a proxy behind the base URL might not serve).
        "small_model": model,
        "enabled_providers": [provider_id],
        "provider": {provider_id: settings},
    }
    if instructions:
        config["instructions"] = instructions
    return config


def _env(launch: TurnLaunch) -> dict[str, str]:
    home = launch.home
    return {
        "HOME": home,
        # Config, sessions (sqlite, resume needs it), caches and logs all live in the branch's
        # home, which persists across turns.
        "XDG_CONFIG_HOME": posixpath.join(home, ".config"),
        "XDG_DATA_HOME": posixpath.join(home, ".local", "share"),
        "XDG_CACHE_HOME": posixpath.join(home, ".cache"),
        "XDG_STATE_HOME": posixpath.join(home, ".local", "state"),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",  # the bundled model list; no models.dev fetch
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",  # no language servers fetched mid-turn
        "OPENCODE_PERMISSION": json.dumps(PERMISSIONS),
    }


# --- JSON line parsing --------------------------------------------------------------------------

_TOOL_NAMES = {
    "bash": "shell",
    "write": "write",
    "edit": "edit",
    "multiedit": "edit",
    "apply_patch": "edit",
    "patch": "edit",
    "read": "read",
    "glob": "glob",
    "grep": "grep",
    "websearch": "web_search",
}
_FILE_TOOLS = ("read", "write", "edit")
# `--print-logs` lines: `timestamp=… level=ERROR run=… message="stream error" key=value …`.
_LOG_LINE_RE = re.compile(r"^timestamp=\S+ level=[A-Z]+ ")
_LOG_FIELD_RE = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')
_CAUSE_RE = re.compile(r" \(cause: (?:\w+: )?(.+)\)$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RATE_LIMITED = "rate limited by the provider"
_HOPELESS = (_RATE_LIMITED, "insufficient credit", "invalid API key")
_UNREACHABLE = "could not reach the model API"
_STOPPED = (143, -signal.SIGTERM)


class OpenCodeParser:
    """OpenCode's `--format json` lines and `--print-logs` lines -> normalized events."""

    def __init__(self, *, base_url: str | None = None) -> None:
        self._base_url = base_url
        self._session_id: str | None = None
        self._texts: list[str] = []
        self._last_reason: str | None = None  # of the last step_finish
        self._usage: dict[str, Any] | None = None
        self._error: str | None = None  # from an `error` line or a fatal log line; reported
        self._log_error: str | None = None  # the last main-agent ERROR log, to explain exits
        self._stream_errors = 0  # in a row, since the last progress
        self._last_stderr = ""  # the last non-JSON line, explained: why the CLI exited
        self._handlers: dict[object, Callable[[dict[str, Any]], list[AgentEvent]]] = {
            "step_start": self._progress,
            "text": self._text,
            "tool_use": self._tool_use,
            "step_finish": self._step_finish,
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
            if _LOG_LINE_RE.match(line):
                return self._log(line)
            # "permission requested: … auto-rejecting" (colored), crash traces: never text.
            line = _ANSI_RE.sub("", line)
            # e.g. "Error: Session not found" when resuming a lost session, then exit 1
            self._last_stderr = self._message(line.strip()[:300], None)
            return [AgentEvent(STDERR, {"content": cap(line)})]
        handler = self._handlers.get(data.get("type"))
        try:
            events = handler(data) if handler is not None else []
            return self._session(as_text(data.get("sessionID"))) + events
        except (AttributeError, KeyError, TypeError, ValueError):
            # A shape this version never produced: show the line rather than fail the turn.
            return [AgentEvent(STDERR, {"content": cap(line)})]

    def finish(self, exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
        error = self._error
        if error is None:
            if exit_code is None:
                error = "the agent process vanished"
            elif exit_code in _STOPPED:
                error = "the agent was stopped before it finished"
            elif exit_code != 0:
                error = f"the agent exited with code {exit_code}"
                if detail := self._log_error or self._last_stderr:
                    error += f": {detail}"
            elif self._last_reason != "stop":
                error = "the agent ended without a result"
                if self._last_reason:
                    error += f" (its last step ended with {self._last_reason!r})"
        # An error line was reported when it arrived. SIGTERM comes only from the runner's
        # cancel, timeout or fatal-error kill, which report themselves.
        quiet = self._error is not None or exit_code in _STOPPED
        events = [AgentEvent(USAGE, self._usage)] if self._usage is not None else []
        if error is not None and not quiet:
            events.append(_error(error))
        outcome = TurnOutcome(
            succeeded=error is None,
            final_text="\n\n".join(t for t in self._texts if t),
            session_id=self._session_id,
            error=error,
        )
        return events, outcome

    # - JSON line types -

    def _session(self, session_id: str) -> list[AgentEvent]:
        if not _SESSION_ID_RE.match(session_id) or session_id == self._session_id:
            return []
        self._session_id = session_id
        return [AgentEvent(SESSION_ID, {"session_id": session_id})]

    def _progress(self, data: dict[str, Any]) -> list[AgentEvent]:
        self._stream_errors = 0  # the model answered: earlier retries succeeded
        return []

    def _text(self, data: dict[str, Any]) -> list[AgentEvent]:
        self._progress(data)
        text = as_text(data["part"].get("text"))
        self._texts.append(text)  # whole parts: OpenCode prints a text part once it ends
        return [AgentEvent(TOKEN, {"content": text})] if text else []

    def _tool_use(self, data: dict[str, Any]) -> list[AgentEvent]:
        self._progress(data)
        part = data["part"]
        state = part.get("state") or {}
        raw_name = as_text(part.get("tool"))
        tool = _TOOL_NAMES.get(raw_name, raw_name.lower())
        tool_input = canonical_input(tool, state.get("input"))
        summary = tool_summary(tool, tool_input, None)
        title = as_text(state.get("title"))
        path = as_text(tool_input.get("file_path"))
        if tool in _FILE_TOOLS and title and path.endswith(f"/{title}"):
            summary = title  # OpenCode's own path relative to the repo
        call_id = as_text(part.get("callID"))
        call = {"id": call_id, "tool": tool, "summary": summary, "input": tool_input}
        exit_code = (state.get("metadata") or {}).get("exit")
        failed = state.get("status") == "error" or exit_code not in (None, 0)
        output = as_text(state.get("error")) if state.get("status") == "error" else ""
        output = output or as_text(state.get("output"))
        result = {"tool_call_id": call_id, "output": cap(output), "is_error": failed}
        # OpenCode prints a tool once it has finished: call and result arrive together.
        return [AgentEvent(TOOL, {"tool_call": call}), AgentEvent(TOOL_RESULT, result)]

    def _step_finish(self, data: dict[str, Any]) -> list[AgentEvent]:
        self._progress(data)
        part = data["part"]
        self._last_reason = as_text(part.get("reason"))
        tokens = part.get("tokens") or {}
        cache = tokens.get("cache") or {}
        usage = self._usage or {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        # OpenCode reports cached input apart from `input`; reasoning apart from `output`.
        usage["input_tokens"] += sum(
            int(n or 0) for n in (tokens.get("input"), cache.get("read"), cache.get("write"))
        )
        usage["output_tokens"] += int(tokens.get("output") or 0)
        usage["output_tokens"] += int(tokens.get("reasoning") or 0)
        usage["cost_usd"] += float(part.get("cost") or 0.0)
        self._usage = usage
        return []

    def _on_error(self, data: dict[str, Any]) -> list[AgentEvent]:
        error = data.get("error") or {}
        details = error.get("data") or {}
        detail = as_text(details.get("message")) or as_text(error.get("name")) or "unknown error"
        if self._error is not None:
            return []  # a fatal log line said it first; the process is being ended
        self._error = self._message(detail, details.get("statusCode"))
        return [_error(self._error)]

    # - `--print-logs` lines -

    def _log(self, line: str) -> list[AgentEvent]:
        fields = _log_fields(line)
        session = self._session(fields.get("session.id", ""))
        detail = _tidy(fields.get("error.error") or fields.get("error") or "")
        side_request = fields.get("agent") == "title" or fields.get("small") == "true"
        if fields.get("level") != "ERROR" or not detail or side_request:
            # Not about the user's turn (e.g. a failed title request): shown, never fatal.
            return [*session, AgentEvent(STDERR, {"content": cap(line)})]
        what = fields.get("message") or "error"
        events = [*session, AgentEvent(STDERR, {"content": f"opencode {what}: {detail}"})]
        self._log_error = self._message(detail, None)
        if what != "stream error":
            return events
        # One stream error per attempt. OpenCode retries 429s (rate limits, but also OpenAI's
        # "insufficient_quota"), overloads and network errors forever: end the turn at once
        # when retrying cannot help soon, else after MAX_RETRIES (an overload passes in
        # seconds). An invalid key is not retried: an `error` line follows and OpenCode exits;
        # ending it first is harmless.
        self._stream_errors += 1
        overloaded = "overloaded" in detail.lower()
        hopeless = self._log_error.startswith(_HOPELESS) and not overloaded
        if self._error is not None or not (hopeless or self._stream_errors > MAX_RETRIES):
            return events
        self._error = self._log_error
        return [*events, AgentEvent(ERROR, {"message": self._error, "fatal": True})]

    def _message(self, detail: str, status: object) -> str:
        friendly = _friendly_opencode_error(detail, status)
        if friendly == _UNREACHABLE and self._base_url:
            friendly += f" at {self._base_url}"
        if friendly is None:
            return detail[:500]
        return f"{friendly} ({detail[:500]})"


def _friendly_opencode_error(detail: str, status: object) -> str | None:
    """Claude's phrases, plus the wording of OpenAI-style providers and the AI SDK."""
    friendly = friendly_error(detail, status, None)
    if friendly is not None:
        return friendly
    text = detail.lower()
    if status == 403 or mentions(text, "incorrect api key", "invalid_api_key", "unauthorized"):
        return "invalid API key"
    if mentions(text, "too many requests", "usage limit", "quota", "exhausted"):
        return _RATE_LIMITED
    if mentions(text, "cannot connect", "econnrefused", "fetch failed", "enotfound"):
        return _UNREACHABLE
    if "session not found" in text:  # its state is gone, or the branch's home changed
        return "could not resume the agent's previous conversation"
    return None


def _tidy(detail: str) -> str:
    """An AI SDK error message without its class name or a cause that repeats it."""
    detail = detail.removeprefix("AI_APICallError: ")
    cause = _CAUSE_RE.search(detail)
    if cause and cause.group(1) in detail[: cause.start()]:
        return detail[: cause.start()]
    return detail


def _log_fields(line: str) -> dict[str, str]:
    """logfmt fields; quoted values are JSON strings (escaped quotes and newlines)."""
    fields = {}
    for key, raw in _LOG_FIELD_RE.findall(line):
        value = raw
        if raw.startswith('"'):
            try:
                value = str(json.loads(raw))
            except ValueError:
                value = raw[1:-1]
        fields[key] = value
    return fields


def _error(message: str) -> AgentEvent:
    return AgentEvent(ERROR, {"message": message})
