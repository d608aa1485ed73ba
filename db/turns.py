"""Turn records: what the turn activity reads before a run and writes after it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Branch, Credential, Message, Turn

TERMINAL = ("succeeded", "failed", "cancelled")


# How much of an earlier conversation a newly chosen agent is given (the newest part wins).
MAX_HANDOVER_CHARS = 100_000


@dataclass(frozen=True)
class TurnContext:
    turn: Turn
    prompt: str
    branch: Branch
    resume_session_id: str | None
    credential: Credential | None
    # Set when the branch switched agents: the conversation so far, for the new agent's first
    # turn (sessions do not transfer between agents).
    handover: str | None = None

    @property
    def agent_prompt(self) -> str:
        if self.handover is None:
            return self.prompt
        return (
            "You are taking over a conversation on this branch from another coding agent. "
            "The conversation so far:\n\n"
            f"{self.handover}\n\n---\n\nThe user's new message:\n\n{self.prompt}"
        )


async def load_turn_context(
    session: AsyncSession, turn_id: uuid.UUID, credential_provider: str | None
) -> TurnContext | None:
    turn = await session.get(Turn, turn_id)
    if turn is None:
        return None
    message = await session.get(Message, turn.message_id)
    branch = await session.get(Branch, turn.branch_id)
    if message is None or branch is None:
        return None
    previous = await session.scalar(
        select(Turn)
        .where(
            Turn.branch_id == turn.branch_id,
            Turn.id != turn.id,
            Turn.created_at <= turn.created_at,
            Turn.status.in_(TERMINAL),
        )
        .order_by(Turn.created_at.desc())
        .limit(1)
    )
    resume: str | None = None
    handover: str | None = None
    if previous is not None and previous.agent != turn.agent:
        # Sessions do not transfer between agents: a fresh session, told what came before.
        handover = await _conversation_text(session, turn)
    elif previous is not None:
        resume = await session.scalar(
            select(Turn.agent_session_id)
            .where(
                Turn.branch_id == turn.branch_id,
                Turn.agent == turn.agent,
                Turn.agent_session_id.is_not(None),
                Turn.id != turn.id,
                Turn.created_at <= turn.created_at,
            )
            .order_by(Turn.created_at.desc())
            .limit(1)
        )
    credential = None
    if credential_provider is not None:
        credential = await session.scalar(
            select(Credential).where(
                Credential.user_id == turn.user_id, Credential.provider == credential_provider
            )
        )
    return TurnContext(turn, message.content, branch, resume, credential, handover)


async def _conversation_text(session: AsyncSession, turn: Turn) -> str:
    # Turns run one at a time, so every stored reply belongs to an earlier turn; user messages
    # queued after this one are not part of "so far".
    messages = await session.scalars(
        select(Message)
        .where(
            Message.branch_id == turn.branch_id,
            (Message.role == "assistant") | (Message.created_at < turn.created_at),
        )
        .order_by(Message.created_at)
    )
    parts = [
        f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}"
        for m in messages
        if m.content.strip() and m.id != turn.message_id
    ]
    text = "\n\n".join(parts)
    return text[-MAX_HANDOVER_CHARS:]


async def mark_running(session: AsyncSession, turn_id: uuid.UUID) -> None:
    await session.execute(
        update(Turn)
        .where(Turn.id == turn_id, Turn.status == "queued")
        .values(status="running", started_at=datetime.now(UTC))
    )


async def record_session_id(session: AsyncSession, turn_id: uuid.UUID, session_id: str) -> None:
    await session.execute(
        update(Turn).where(Turn.id == turn_id).values(agent_session_id=session_id)
    )


async def finish_turn(
    session: AsyncSession,
    turn: Turn,
    *,
    status: str,
    error: str | None,
    reply: str,
    commit_sha: str | None,
) -> None:
    """Idempotent: the assistant message is keyed by the turn, the status set once."""
    await session.execute(
        update(Turn)
        .where(Turn.id == turn.id, Turn.status.not_in(TERMINAL))
        .values(status=status, error=error, finished_at=datetime.now(UTC))
    )
    await session.execute(
        insert(Message)
        .values(
            user_id=turn.user_id,
            branch_id=turn.branch_id,
            role="assistant",
            content=reply,
            turn_id=turn.id,
            commit_sha=commit_sha,
            idempotency_key=f"turn:{turn.id}:reply",
        )
        .on_conflict_do_nothing(index_elements=["branch_id", "idempotency_key"])
    )
