from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SettingsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sandbox_auto_stop_minutes: int
    default_loop_max_iterations: int
    default_agent: str
    default_model: str | None


class SettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox_auto_stop_minutes: Annotated[int, Field(ge=5, le=20)] | None = None
    default_loop_max_iterations: Annotated[int, Field(ge=1, le=25)] | None = None
    default_agent: str | None = None
    default_model: str | None = None
