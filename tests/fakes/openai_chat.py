"""The fake model server's OpenAI Chat Completions API (`POST /v1/chat/completions`), streaming."""

from __future__ import annotations

from typing import Any


def serve(handler: Any, body: dict[str, Any]) -> None:
    """Answer one request on `handler` (a `model_server._Handler`)."""
    handler._json(501, {"error": {"message": "not implemented yet", "type": "server_error"}})
