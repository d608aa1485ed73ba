"""Tenancy in one place: every read of an owned row goes through `OwnerScope`.

A row that belongs to another user is indistinguishable from a missing one (the API turns
`NotFoundError` into 404), so ids cannot be probed across users.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


class _Owned(Protocol):
    id: Any
    user_id: Any


OwnedT = TypeVar("OwnedT", bound=_Owned)


class NotFoundError(LookupError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind} not found")
        self.kind = kind


class OwnerScope:
    def __init__(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        self.session = session
        self.user_id = user_id

    def select(self, model: type[OwnedT]) -> Select[OwnedT]:
        owner_column: InstrumentedAttribute[uuid.UUID] = model.user_id
        return select(model).where(owner_column == self.user_id)

    async def get(self, model: type[OwnedT], object_id: uuid.UUID) -> OwnedT:
        id_column: InstrumentedAttribute[uuid.UUID] = model.id
        row = await self.session.scalar(self.select(model).where(id_column == object_id))
        if row is None:
            raise NotFoundError(_kind_name(model))
        return row

    async def get_for_update(self, model: type[OwnedT], object_id: uuid.UUID) -> OwnedT:
        id_column: InstrumentedAttribute[uuid.UUID] = model.id
        stmt = self.select(model).where(id_column == object_id).with_for_update()
        row = await self.session.scalar(stmt)
        if row is None:
            raise NotFoundError(_kind_name(model))
        return row


def _kind_name(model: type[Any]) -> str:
    """`Branch` -> "branch", `ApiToken` -> "api token": what a 404 names."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", model.__name__).lower()
