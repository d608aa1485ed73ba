"""Mapping domain exceptions to HTTP errors, all shaped `{"detail": "..."}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from db.access import NotFoundError


class ServiceUnavailable(Exception):
    """A backing service (Temporal, the database) is down; answered with 503."""


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid value"))
    return f"{location}: {message}" if location else message


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "request body is not valid JSON"}, status_code=400)
    detail = "; ".join(_describe(e) for e in errors) or "invalid request"
    safe = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
    return JSONResponse({"detail": detail, "errors": safe}, status_code=422)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ServiceUnavailable, _unavailable)
