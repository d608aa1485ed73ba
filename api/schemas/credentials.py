from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, StringConstraints


class CredentialProvider(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OPENCODE = "opencode"
    GITHUB = "github"
    DAYTONA = "daytona"


ApiKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=4, max_length=4096, pattern=r"^\S+$")
]


class CredentialPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: ApiKey
    base_url: AnyHttpUrl | None = None


class CredentialOut(BaseModel):
    provider: CredentialProvider
    last4: str
    base_url: str | None
    updated_at: datetime
