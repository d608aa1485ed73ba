from __future__ import annotations

import pytest

from agents.finished import is_finished


@pytest.mark.parametrize(
    ("reply", "finished"),
    [
        ("FINISHED", True),  # exact
        ("finished", True),  # exact, lower case
        ("Finished", True),  # mixed case
        ("  FiNiShEd \n", True),  # mixed case, trimmed
        ("finished.", True),  # trailing punctuation of a one-word reply
        ("All tasks are done. FINISHED", True),  # capitals inside prose
        ("I have FINISHED the refactor and the tests pass.", True),  # capitals mid-sentence
        ("I finished the first task; continuing with the second.", False),  # lower case in prose
        ("Not finished yet, still working.", False),
        ("", False),  # empty
        ("   ", False),
        ("UNFINISHED business remains", True),  # contains FINISHED in capitals: the rule
    ],
)
def test_finished_rules(reply: str, finished: bool) -> None:
    assert is_finished(reply) is finished
