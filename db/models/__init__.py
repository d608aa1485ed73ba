"""All mapped tables; importing this package registers them on `Base.metadata`."""

from db.models.base import Base
from db.models.conversation import Event, Message, Turn
from db.models.loops import LOOP_STOP_REASONS, LoopRun
from db.models.repos import Branch, Repo, Sandbox
from db.models.users import (
    CREDENTIAL_PROVIDERS,
    ApiToken,
    Credential,
    User,
    UserSettings,
    WebSession,
)

__all__ = [
    "CREDENTIAL_PROVIDERS",
    "LOOP_STOP_REASONS",
    "ApiToken",
    "Base",
    "Branch",
    "Credential",
    "Event",
    "LoopRun",
    "Message",
    "Repo",
    "Sandbox",
    "Turn",
    "User",
    "UserSettings",
    "WebSession",
]
