from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    login: str
    name: str | None
    email: str | None
    avatar_url: str | None
    is_admin: bool
    branch_quota: int | None = Field(description="most branches at once; null is unlimited")
    auth_method: Literal["token", "session", "local"] | None = Field(
        default=None, description="how this request was authenticated"
    )
    created_at: datetime


class AuthConfigOut(BaseModel):
    mode: Literal["local", "github", "dev"] = Field(
        description="local: no sign-in; github: GitHub OAuth; dev: signs in GITHUB_PAT's owner"
    )
    login_url: str
    logout_url: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = (
        "api"
    )


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    hint: str
    created_at: datetime
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its digest is stored.")
