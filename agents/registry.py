"""Adapters by agent id. Adding an agent: its adapter module, one entry here and one in
`agents.catalogue`."""

from __future__ import annotations

from agents.base import AgentAdapter
from agents.claude_code import ClaudeCodeAdapter


class AgentNotAvailable(LookupError):
    pass


_ADAPTERS: dict[str, AgentAdapter] = {
    adapter.spec.id: adapter for adapter in (ClaudeCodeAdapter(),)
}


def register_adapter(adapter: AgentAdapter) -> None:
    """Make an adapter available to turns in this process (benchmarks use a synthetic agent)."""
    _ADAPTERS[adapter.spec.id] = adapter


def adapter_for(agent_id: str) -> AgentAdapter:
    adapter = _ADAPTERS.get(agent_id)
    if adapter is None:
        raise AgentNotAvailable(
            f"agent {agent_id!r} cannot run turns yet; available: {', '.join(sorted(_ADAPTERS))}"
        )
    return adapter
