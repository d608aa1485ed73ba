from __future__ import annotations

from pydantic import BaseModel


class ModelOut(BaseModel):
    id: str
    name: str
    credential: str
    available: bool


class AgentOut(BaseModel):
    id: str
    name: str
    default_model: str
    credentials: list[str]
    available: bool
    models: list[ModelOut]
