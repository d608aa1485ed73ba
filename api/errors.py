"""Mapping domain exceptions to HTTP errors, all shaped `{"detail": "..."}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from db.access import NotFoundError
from workflows.types import GitErrorKind, GitOpOutcome


class ServiceUnavailable(Exception):
    """A backing service (Temporal, the database) is down; answered with 503."""


class GitOperationFailed(Exception):
    """A git operation answered with a failure (conflict, rejection, ...); `error_kind` decides
    the status and conflicting files are listed."""

    def __init__(self, outcome: GitOpOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


_GIT_STATUS = {
    GitErrorKind.INVALID: 422,
    GitErrorKind.CONFLICT: 409,
    GitErrorKind.REJECTED: 409,
    GitErrorKind.PROTECTED: 409,
    GitErrorKind.AUTH: 403,
    GitErrorKind.UNSUPPORTED: 422,
    GitErrorKind.UNAVAILABLE: 503,
    GitErrorKind.FAILED: 409,
}


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


async def _git_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GitOperationFailed)
    kind = exc.outcome.error_kind or GitErrorKind.FAILED
    body: dict[str, object] = {"detail": exc.outcome.message, "error_kind": kind.value}
    if exc.outcome.conflicts:
        body["conflicts"] = exc.outcome.conflicts
    return JSONResponse(body, status_code=_GIT_STATUS[kind])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GitOperationFailed, _git_failed)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ServiceUnavailable, _unavailable)
