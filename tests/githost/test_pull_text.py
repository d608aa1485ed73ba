from __future__ import annotations

from githost.pull_text import MAX_TITLE, pull_request_text


def test_title_is_the_first_request_and_body_lists_requests_and_last_reply() -> None:
    title, body = pull_request_text(
        [
            ("user", "Add a health endpoint\n\nIt should return ok."),
            ("assistant", "Added /health."),
            ("user", "Also document it"),
            ("assistant", "Documented in README."),
        ]
    )
    assert title == "Add a health endpoint"
    assert "- Add a health endpoint\n- Also document it" in body
    assert body.index("## Summary") > body.index("## Requests")
    assert "Documented in README." in body and "Added /health." not in body


def test_long_title_is_cut_and_many_requests_are_summarised() -> None:
    title, body = pull_request_text([("user", "x" * 300)] + [("user", f"r{i}") for i in range(30)])
    assert len(title) == MAX_TITLE and title.endswith("…")
    assert "and 11 more" in body


def test_empty_conversation_gives_empty_title() -> None:
    title, body = pull_request_text([])
    assert title == ""
    assert "Upstream Agents" in body
