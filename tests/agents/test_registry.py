from __future__ import annotations

import pytest

from agents.catalogue import AGENTS
from agents.registry import AgentNotAvailable, adapter_for


def test_every_catalogue_agent_has_a_loadable_adapter() -> None:
    for agent_id, spec in AGENTS.items():
        adapter = adapter_for(agent_id)
        assert adapter.spec == spec
        assert adapter_for(agent_id) is adapter  # loaded once


def test_unknown_agent_names_the_known_ones() -> None:
    with pytest.raises(AgentNotAvailable, match="claude-code"):
        adapter_for("gpt-engineer")
