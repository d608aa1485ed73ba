"""A pull request's title and body, written from the branch's conversation."""

from __future__ import annotations

from collections.abc import Sequence

MAX_TITLE = 72
_MAX_REQUESTS = 20
_MAX_REQUEST_LINE = 200
_MAX_SUMMARY = 4000


def pull_request_text(messages: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """`messages` are (role, content) in order; returns (title, body). The title is the first
    request's first line; the body lists every request and ends with the agent's last reply."""
    requests = [content.strip() for role, content in messages if role == "user" and content.strip()]
    replies = [
        content.strip() for role, content in messages if role == "assistant" and content.strip()
    ]
    title = _first_line(requests[0], MAX_TITLE) if requests else ""
    sections: list[str] = []
    if requests:
        shown = requests[:_MAX_REQUESTS]
        lines = [f"- {_first_line(request, _MAX_REQUEST_LINE)}" for request in shown]
        if len(requests) > len(shown):
            lines.append(f"- … and {len(requests) - len(shown)} more")
        sections.append("## Requests\n\n" + "\n".join(lines))
    if replies:
        summary = replies[-1]
        if len(summary) > _MAX_SUMMARY:
            summary = summary[: _MAX_SUMMARY - 1].rstrip() + "…"
        sections.append("## Summary\n\n" + summary)
    sections.append("Made with Upstream Agents.")
    return title, "\n\n".join(sections)


def _first_line(text: str, limit: int) -> str:
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
