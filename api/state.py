from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.events.hub import EventHub
from config.settings import Settings
from db.engine import SessionFactory
from security.crypto import Keyring


@dataclass(frozen=True)
class AppState:
    """Per-process resources, created in the lifespan and reached through `api.deps`."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    temporal: Client
    keyring: Keyring
    events: EventHub
    # Seconds of silence after which an event stream sends a `: ping` comment.
    event_ping_seconds: float = 15.0
