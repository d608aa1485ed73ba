"""Whether an agent's reply counts as FINISHED (the loop-mode stop word)."""

from __future__ import annotations


def is_finished(reply: str) -> bool:
    """Exactly "finished" in any case once trimmed, or "FINISHED" in capitals anywhere."""
    return reply.strip().strip(".!").lower() == "finished" or "FINISHED" in reply
