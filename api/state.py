from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

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
