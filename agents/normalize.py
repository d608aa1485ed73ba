"""Normalizing agent output: canonical tool input keys, one-line summaries, size caps, and
error messages a user can act on. Shared by every adapter's parser."""

from __future__ import annotations

from typing import Any

MAX_OUTPUT_CHARS = 64 * 1024  # per tool result, per tool-input string, per stderr line
SUMMARY_CHARS = 120
INPUT_ALIASES = {
    "file_path": ("filePath", "path", "target"),
    "command": ("cmd", "script"),
    "pattern": ("query", "search"),
}


def friendly_error(detail: str, status: object, kind: str | None) -> str | None:
    """A short, actionable phrase for the failures users can fix themselves."""
    text = f"{detail} {kind or ''}".lower()
    if "credit balance" in text or "billing" in text or status == 402:
        return "insufficient credit"
    if status == 401 or mentions(text, "invalid api key", "x-api-key", "authentication"):
        return "invalid API key"
    if status in (429, 529) or mentions(text, "rate limit", "rate_limit", "overloaded"):
        return "rate limited by the provider"
    if mentions(text, "connectionrefused", "connection refused", "unable to connect"):
        return "could not reach the model API"
    if "no conversation found" in text:  # its session files are gone, or the cwd/HOME changed
        return "could not resume the agent's previous conversation"
    return None


def mentions(text: str, *needles: str) -> bool:
    return any(needle in text for needle in needles)


def as_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def cap(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [truncated {len(text) - limit} characters]"


def canonical_input(tool: str, raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    result = {k: cap(v) if isinstance(v, str) else v for k, v in raw.items()}
    for canonical, aliases in INPUT_ALIASES.items():
        for alias in aliases:
            # grep/glob `path` is the directory searched, not a file: leave it alone.
            if alias == "path" and tool in ("grep", "glob"):
                continue
            if canonical not in result and alias in result:
                result[canonical] = result.pop(alias)
    return result


def tool_summary(tool: str, tool_input: dict[str, Any], cwd: str | None) -> str:
    def text(key: str) -> str:
        return as_text(tool_input.get(key))

    if tool == "shell":
        summary = text("command")
    elif text("file_path"):
        summary = relative_path(text("file_path"), cwd)
    elif tool in ("grep", "glob"):
        where = text("path")
        summary = text("pattern") + (f" in {relative_path(where, cwd)}" if where else "")
    else:
        keys = ("pattern", "url", "description", "prompt", "skill")
        summary = next((text(k) for k in keys if text(k)), "")
        if not summary:
            summary = next((v for v in tool_input.values() if isinstance(v, str)), "")
    summary = " ".join(summary.split())  # one line
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    return summary or tool


def relative_path(path: str, cwd: str | None) -> str:
    if cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return path
