from __future__ import annotations

import pytest

from gitops.sources import InvalidRepoSource, SourceKind, parse_repo_source


@pytest.mark.parametrize(
    ("text", "kind", "url", "name"),
    [
        ("https://github.com/o/r.git", SourceKind.REMOTE, "https://github.com/o/r.git", "r"),
        ("git@github.com:o/r.git", SourceKind.REMOTE, "git@github.com:o/r.git", "r"),
        ("ssh://git@host/o/r", SourceKind.REMOTE, "ssh://git@host/o/r", "r"),
        (
            "octo/hello-world",
            SourceKind.REMOTE,
            "https://github.com/octo/hello-world.git",
            "hello-world",
        ),
        ("/srv/repos/app.git/", SourceKind.LOCAL, "/srv/repos/app.git", "app"),
        ("file:///srv/repos/app", SourceKind.LOCAL, "/srv/repos/app", "app"),
    ],
)
def test_sources_are_classified(text: str, kind: SourceKind, url: str, name: str) -> None:
    source = parse_repo_source(text)
    assert (source.kind, source.url, source.name) == (kind, url, name)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-uhelp",
        "ext::sh -c id",
        "fd::17",
        "ftp://host/r.git",
        "https://user:pw@host/r.git",
        "relative/path/too/deep",
        "https://host/r\n.git",
        "x" * 2001,
    ],
)
def test_dangerous_or_unknown_sources_are_refused(text: str) -> None:
    with pytest.raises(InvalidRepoSource):
        parse_repo_source(text)
