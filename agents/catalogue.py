"""The agents this service can run, their models, and the credential each needs.

A static catalogue: adding an agent is one entry here plus its adapter module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    credential: str  # provider whose key the model needs


@dataclass(frozen=True)
class AgentSpec:
    id: str
    name: str
    models: tuple[ModelSpec, ...]
    default_model: str
    # "module:Class" of the adapter, imported when a turn first needs it.
    adapter: str = ""

    def model(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    @property
    def credentials(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.credential for m in self.models))


CLAUDE_CODE = AgentSpec(
    id="claude-code",
    name="Claude Code",
    models=(
        ModelSpec("claude-sonnet-4-5", "Claude Sonnet 4.5", "anthropic"),
        ModelSpec("claude-opus-4-1", "Claude Opus 4.1", "anthropic"),
        ModelSpec("claude-sonnet-4", "Claude Sonnet 4", "anthropic"),
        ModelSpec("claude-opus-4", "Claude Opus 4", "anthropic"),
        ModelSpec("claude-3-7-sonnet", "Claude 3.7 Sonnet", "anthropic"),
        ModelSpec("claude-haiku-4-5", "Claude Haiku 4.5", "anthropic"),
    ),
    default_model="claude-sonnet-4-5",
    adapter="agents.claude_code:ClaudeCodeAdapter",
)

CODEX = AgentSpec(
    id="codex",
    name="Codex",
    models=(
        ModelSpec("gpt-5.5", "GPT-5.5", "openai"),
        ModelSpec("gpt-5-codex", "GPT-5 Codex", "openai"),
        ModelSpec("gpt-5", "GPT-5", "openai"),
        ModelSpec("codex-mini", "Codex Mini", "openai"),
        ModelSpec("o3", "o3", "openai"),
        ModelSpec("o4-mini", "o4-mini", "openai"),
        ModelSpec("gpt-4.1-mini", "GPT-4.1 mini", "openai"),
    ),
    default_model="gpt-5.5",
    adapter="agents.codex:CodexAdapter",
)

OPENCODE = AgentSpec(
    id="opencode",
    name="OpenCode",
    models=(
        ModelSpec("anthropic/claude-sonnet-4-5", "Claude Sonnet 4.5 (Anthropic)", "anthropic"),
        ModelSpec("anthropic/claude-sonnet-4", "Claude Sonnet 4 (Anthropic)", "anthropic"),
        ModelSpec("openai/gpt-5", "GPT-5 (OpenAI)", "openai"),
        ModelSpec("openai/gpt-4.1-mini", "GPT-4.1 mini (OpenAI)", "openai"),
        ModelSpec("opencode/grok-code", "Grok Code (OpenCode Zen)", "opencode"),
    ),
    default_model="anthropic/claude-sonnet-4-5",
    adapter="agents.opencode:OpenCodeAdapter",
)

AGENTS: dict[str, AgentSpec] = {a.id: a for a in (CLAUDE_CODE, CODEX, OPENCODE)}
DEFAULT_AGENT = CLAUDE_CODE.id


class UnknownAgentError(ValueError):
    pass


def resolve_agent_model(agent_id: str, model_id: str | None) -> tuple[AgentSpec, ModelSpec]:
    """Validate an (agent, model) pair; the error lists the valid choices."""
    agent = AGENTS.get(agent_id)
    if agent is None:
        raise UnknownAgentError(
            f"unknown agent {agent_id!r}; valid agents: {', '.join(sorted(AGENTS))}"
        )
    chosen = agent.model(model_id or agent.default_model)
    if chosen is None:
        valid = ", ".join(m.id for m in agent.models)
        raise UnknownAgentError(
            f"agent {agent.id!r} does not offer model {model_id!r}; valid models: {valid}"
        )
    return agent, chosen
