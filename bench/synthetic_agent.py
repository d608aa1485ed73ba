"""A synthetic agent for benchmarks: writes JSON lines at a set rate, each stamped with the
wall-clock time it was written, through the real turn machinery (runner, log, parser, event log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents.base import (
    STDERR,
    TOKEN,
    AgentEvent,
    LaunchPlan,
    LineParser,
    ToolPackage,
    TurnLaunch,
    TurnOutcome,
)
from agents.catalogue import AgentSpec, ModelSpec

SPEC = AgentSpec(
    id="synthetic",
    name="Synthetic (benchmarks)",
    models=(ModelSpec("synthetic", "Synthetic", "anthropic"),),
    default_model="synthetic",
)

# Runs under the sandbox's /usr/bin/python3. The prompt (stdin) is "<lines> <lines per second>"
# (0: as fast as possible). Each line is flushed on its own, as an agent streaming tokens would.
_PROGRAM = r"""
import json, sys, time
words = sys.stdin.read().split()
try:
    count, rate = int(words[0]), float(words[1])
except (IndexError, ValueError):  # a loop's continuation prompt: a short reply
    count, rate = 5, 0.0
start = time.time()
out = sys.stdout
for i in range(count):
    if rate:
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
    out.write(json.dumps({"i": i, "t": time.time()}) + "\n")
    out.flush()
out.write(json.dumps({"result": "ok"}) + "\n")
"""


@dataclass
class SyntheticParser:
    lines: int = 0
    finished: bool = False

    def feed(self, line: str) -> list[AgentEvent]:
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            return [AgentEvent(STDERR, {"content": line})]
        if "result" in record:
            self.finished = True
            return []
        self.lines += 1
        return [AgentEvent(TOKEN, {"content": line})]

    def finish(self, exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
        ok = self.finished and exit_code == 0
        return [], TurnOutcome(ok, "", None, None if ok else f"exit {exit_code}")


@dataclass
class SyntheticAdapter:
    spec: AgentSpec = SPEC
    package: ToolPackage | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def plan(self, launch: TurnLaunch) -> LaunchPlan:
        return LaunchPlan(
            argv=["/usr/bin/python3", "-c", _PROGRAM],
            stdin_path=launch.prompt_path,
            env={"HOME": launch.home, **self.extra_env},
        )

    def credential_env(self, api_key: str, base_url: str | None) -> dict[str, str]:
        return {}

    def new_parser(self, *, base_url: str | None = None) -> LineParser:
        return SyntheticParser()
