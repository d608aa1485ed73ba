"""The agent adapter contract: how to install an agent CLI, launch one turn, and read its output.

An adapter never runs anything itself; the turn activity does, inside the sandbox. Adapters are
pure (command lines, config files, line parsing), so they are tested on recorded output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.catalogue import AgentSpec

# Normalized event kinds, as in the HTTP contract's event stream (turn_id is added by the caller).
TOKEN = "token"  # {"content"}
TOOL = "tool"  # {"tool_call": {"id", "tool", "summary", "input"}}
TOOL_RESULT = "tool-result"  # {"tool_call_id", "output", "is_error"}
STDOUT = "stdout"  # {"content"}
STDERR = "stderr"  # {"content"}
SESSION_ID = "session-id"  # {"session_id"}
USAGE = "usage"  # {"input_tokens", "output_tokens", "cost_usd"}
ERROR = "error"  # {"message"}; with "fatal": true the runner ends the agent at once


@dataclass(frozen=True)
class AgentEvent:
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ToolPackage:
    """An npm package installed once into the shared tools directory."""

    npm_name: str
    version: str
    # Executable path relative to the package's install prefix (`<tools>/<agent>/<version>`).
    binary: str


@dataclass(frozen=True)
class TurnLaunch:
    """What an adapter needs to build a turn's command line (all paths inside the sandbox)."""

    model: str
    workdir: str
    home: str
    tools_prefix: str  # where this agent's ToolPackage is installed, as seen in the sandbox
    prompt_path: str  # the prompt, written by the caller; passed as data, never interpolated
    resume_session_id: str | None = None
    system_prompt: str | None = None


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    # Read from this file on stdin (when the CLI takes the prompt there), else /dev/null.
    stdin_path: str | None = None
    # Non-secret environment (secrets travel in the env file, see `credential_env`).
    env: dict[str, str] = field(default_factory=dict)
    # Extra files to write before launch: sandbox path -> content (e.g. config files).
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TurnOutcome:
    """What the parser concluded when the output ended."""

    succeeded: bool
    final_text: str
    session_id: str | None
    error: str | None = None


class LineParser(Protocol):
    def feed(self, line: str) -> list[AgentEvent]:
        """One output line (without the newline), JSON or not; returns the events it carries."""
        ...

    def finish(self, exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
        """End of output (`exit_code` None: the process vanished); trailing events + outcome."""
        ...


class AgentAdapter(Protocol):
    spec: AgentSpec
    # None: the agent needs nothing installed (it runs what the sandbox image has).
    package: ToolPackage | None

    def plan(self, launch: TurnLaunch) -> LaunchPlan: ...

    def credential_env(self, api_key: str, base_url: str | None) -> dict[str, str]:
        """Secret environment for the env file (readable only inside the sandbox)."""
        ...

    def new_parser(self, *, base_url: str | None = None) -> LineParser:
        """A parser for one turn; `base_url` (as given to `credential_env`, None: the provider's
        default) only names the endpoint in "could not reach" errors."""
        ...
