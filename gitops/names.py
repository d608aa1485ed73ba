"""Readable generated branch names, e.g. `upstream/brave-otter-3f9c`."""

from __future__ import annotations

import secrets

_ADJECTIVES = (
    "amber", "brave", "calm", "clever", "eager", "gentle", "keen", "lively", "lucky", "merry",
    "nimble", "quiet", "rapid", "steady", "sunny", "swift", "tidy", "vivid", "witty", "zesty",
)  # fmt: skip
_NOUNS = (
    "badger", "comet", "falcon", "fern", "harbor", "heron", "lynx", "maple", "meadow", "otter",
    "pebble", "quartz", "river", "robin", "spruce", "summit", "tide", "willow", "wren", "yak",
)  # fmt: skip

GENERATED_PREFIX = "upstream/"


def generate_branch_name() -> str:
    adjective = secrets.choice(_ADJECTIVES)
    noun = secrets.choice(_NOUNS)
    return f"{GENERATED_PREFIX}{adjective}-{noun}-{secrets.token_hex(2)}"
