"""FastAPI dependencies, as Annotated aliases routes can declare by type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.auth import authenticate
from api.state import AppState
from config.settings import Settings
from db.access import OwnerScope
from db.models import User
from security.crypto import Keyring


def get_state(request: Request) -> AppState:
    return cast(AppState, request.state.app)


async def get_session(
    state: Annotated[AppState, Depends(get_state)],
) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_temporal(state: StateDep) -> Client:
    return state.temporal


def get_keyring(state: StateDep) -> Keyring:
    return state.keyring


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]


async def get_current_user(request: Request, session: SessionDep, settings: SettingsDep) -> User:
    return await authenticate(request, session, settings)


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_scope(session: SessionDep, user: CurrentUser) -> OwnerScope:
    return OwnerScope(session, user.id)


ScopeDep = Annotated[OwnerScope, Depends(get_scope)]
