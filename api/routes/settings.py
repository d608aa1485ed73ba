from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.dialects.postgresql import insert

from agents.catalogue import UnknownAgentError, resolve_agent_model
from api.deps import ScopeDep
from api.schemas.settings import SettingsOut, SettingsPatch
from db.models import UserSettings

router = APIRouter(prefix="/me/settings", tags=["settings"])


async def load_settings(scope: ScopeDep) -> UserSettings:
    await scope.session.execute(
        insert(UserSettings).values(user_id=scope.user_id).on_conflict_do_nothing()
    )
    row = await scope.session.get(UserSettings, scope.user_id)
    assert row is not None
    return row


@router.get("", response_model=SettingsOut)
async def read_settings(scope: ScopeDep) -> SettingsOut:
    row = await load_settings(scope)
    await scope.session.commit()
    return SettingsOut.model_validate(row)


@router.patch("", response_model=SettingsOut)
async def update_settings(body: SettingsPatch, scope: ScopeDep) -> SettingsOut:
    row = await load_settings(scope)
    changes = body.model_dump(exclude_unset=True)
    if "default_agent" in changes or "default_model" in changes:
        agent = changes.get("default_agent") or row.default_agent
        model = changes.get("default_model", row.default_model)
        if "default_agent" in changes and "default_model" not in changes:
            model = None  # the old default model belongs to the old agent
        try:
            resolve_agent_model(agent, model)
        except UnknownAgentError as exc:
            await scope.session.rollback()
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        changes["default_agent"], changes["default_model"] = agent, model
    for field, value in changes.items():
        if value is None and field in ("sandbox_auto_stop_minutes", "default_loop_max_iterations"):
            continue
        setattr(row, field, value)
    await scope.session.commit()
    return SettingsOut.model_validate(row)
