from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import ScopeDep, SettingsDep, TemporalDep
from api.loops import loop_out, loop_snapshot, start_loop, stop_loop
from api.schemas.conversation import StopAccepted
from api.schemas.loops import LoopCreate, LoopOut
from db.models import Branch, LoopRun

branch_router = APIRouter(prefix="/branches/{branch_id}/loops", tags=["loops"])
router = APIRouter(prefix="/loops", tags=["loops"])


@branch_router.post("", status_code=status.HTTP_201_CREATED, response_model=LoopOut)
async def create_loop(
    branch_id: uuid.UUID,
    body: LoopCreate,
    scope: ScopeDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> LoopOut:
    """Start an unattended run: the prompt, then continuations until the agent says FINISHED,
    the iteration cap, a budget, a failed turn or a stop. One active loop per branch."""
    branch = await scope.get(Branch, branch_id)
    return await start_loop(scope, temporal, settings.task_queue, branch, body)


@router.get("/{loop_id}", response_model=LoopOut)
async def read_loop(loop_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep) -> LoopOut:
    run = await scope.get(LoopRun, loop_id)
    out = loop_out(run)
    if run.status == "running":
        live = await loop_snapshot(temporal, run.id)
        if live is not None:
            out.iterations = max(out.iterations, live.iteration)
            out.running_turn = uuid.UUID(live.running_turn) if live.running_turn else None
    return out


@router.post("/{loop_id}/stop", status_code=status.HTTP_202_ACCEPTED, response_model=StopAccepted)
async def stop(loop_id: uuid.UUID, scope: ScopeDep, temporal: TemporalDep) -> StopAccepted:
    """End the run; its running turn is cancelled."""
    run = await scope.get(LoopRun, loop_id)
    await stop_loop(temporal, run.id)
    return StopAccepted(detail="stop requested")
