from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import StateDep

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT = 3.0


@router.get("/health", summary="Database and Temporal reachability; 503 names what is down")
async def health(state: StateDep) -> JSONResponse:
    database, temporal = await asyncio.gather(_check_database(state), _check_temporal(state))
    body = {"status": "ok", "database": database, "temporal": temporal}
    down = [
        name for name, result in (("database", database), ("temporal", temporal)) if result != "ok"
    ]
    if down:
        body["status"] = "unavailable"
        body["detail"] = " and ".join(down) + (" is down" if len(down) == 1 else " are down")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


async def _check_database(state: StateDep) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT), state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "down"; the reason is reported, not raised
        return f"down: {type(exc).__name__}"
    return "ok"


async def _check_temporal(state: StateDep) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            healthy = await state.temporal.service_client.check_health(
                timeout=timedelta(seconds=_CHECK_TIMEOUT)
            )
    except Exception as exc:  # see _check_database
        return f"down: {type(exc).__name__}"
    return "ok" if healthy else "down: not serving"
