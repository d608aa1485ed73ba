from __future__ import annotations

from fastapi import APIRouter

from agents.catalogue import AGENTS
from api.deps import ScopeDep
from api.schemas.agents import AgentOut, ModelOut
from db.models import Credential

router = APIRouter(tags=["agents"])


@router.get("/agents", response_model=list[AgentOut])
async def list_agents(scope: ScopeDep) -> list[AgentOut]:
    held = set(
        await scope.session.scalars(scope.select(Credential).with_only_columns(Credential.provider))
    )
    return [
        AgentOut(
            id=agent.id,
            name=agent.name,
            default_model=agent.default_model,
            credentials=list(agent.credentials),
            available=any(c in held for c in agent.credentials),
            models=[
                ModelOut(
                    id=m.id, name=m.name, credential=m.credential, available=m.credential in held
                )
                for m in agent.models
            ],
        )
        for agent in AGENTS.values()
    ]
