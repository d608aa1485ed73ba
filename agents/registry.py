"""Adapters by agent id, loaded from the catalogue's `adapter` paths on first use.

Adding an agent is one adapter module plus one catalogue entry (see docs/agents.md).
"""

from __future__ import annotations

import importlib

from agents.base import AgentAdapter
from agents.catalogue import AGENTS


class AgentNotAvailable(LookupError):
    pass


_LOADED: dict[str, AgentAdapter] = {}


def register_adapter(adapter: AgentAdapter) -> None:
    """Make an adapter outside the catalogue available to turns in this process (benchmarks
    use a synthetic agent)."""
    _LOADED[adapter.spec.id] = adapter


def adapter_for(agent_id: str) -> AgentAdapter:
    if agent_id in _LOADED:
        return _LOADED[agent_id]
    spec = AGENTS.get(agent_id)
    if spec is None or not spec.adapter:
        raise AgentNotAvailable(
            f"agent {agent_id!r} cannot run turns; known agents: {', '.join(sorted(AGENTS))}"
        )
    module_name, _, class_name = spec.adapter.partition(":")
    try:
        adapter: AgentAdapter = getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError) as exc:
        raise AgentNotAvailable(f"agent {agent_id!r} cannot be loaded: {exc}") from exc
    _LOADED[agent_id] = adapter
    return adapter
