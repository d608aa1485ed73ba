from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from sqlalchemy import delete

from api.deps import CurrentUser, ScopeDep, SessionDep
from api.schemas.users import TokenCreate, TokenCreated, TokenOut, UserOut
from db.models import ApiToken
from db.users import issue_token_for

router = APIRouter(tags=["me"])


@router.get("/me", response_model=UserOut)
async def read_me(user: CurrentUser, request: Request) -> UserOut:
    out = UserOut.model_validate(user)
    out.auth_method = getattr(request.state, "auth_method", None)
    return out


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
async def create_token(body: TokenCreate, user: CurrentUser, session: SessionDep) -> TokenCreated:
    issued = await issue_token_for(session, user, body.name)
    await session.commit()
    return TokenCreated(**TokenOut.model_validate(issued.row).model_dump(), token=issued.token)


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(scope: ScopeDep) -> list[TokenOut]:
    rows = await scope.session.scalars(scope.select(ApiToken).order_by(ApiToken.created_at))
    return [TokenOut.model_validate(row) for row in rows]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_token(token_id: uuid.UUID, scope: ScopeDep) -> None:
    token = await scope.get(ApiToken, token_id)
    await scope.session.execute(delete(ApiToken).where(ApiToken.id == token.id))
    await scope.session.commit()
