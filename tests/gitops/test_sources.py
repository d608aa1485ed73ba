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


@pytest.mark.parametrize(
    ("text", "url", "full_name"),
    [
        ("octo/app", "https://github.com/octo/app.git", "octo/app"),
        ("https://github.com/octo/app", "https://github.com/octo/app.git", "octo/app"),
        ("https://GitHub.com/octo/app.git/", "https://github.com/octo/app.git", "octo/app"),
        ("git@github.com:octo/app.git", "git@github.com:octo/app.git", "octo/app"),
        ("ssh://git@github.com/octo/app", "ssh://git@github.com/octo/app", "octo/app"),
        ("https://gitlab.example/octo/app.git", "https://gitlab.example/octo/app.git", None),
        ("https://github.com/octo/app/tree/main", "https://github.com/octo/app/tree/main", None),
    ],
)
def test_github_repositories_are_recognised(text: str, url: str, full_name: str | None) -> None:
    source = parse_repo_source(text)
    assert (source.url, source.github_full_name) == (url, full_name)


def test_the_github_base_is_configurable() -> None:
    base = "http://127.0.0.1:8123/"
    for text in (
        "octo/app",
        "http://127.0.0.1:8123/octo/app",
        "http://127.0.0.1:8123/octo/app.git",
    ):
        source = parse_repo_source(text, github_url=base)
        assert source.url == "http://127.0.0.1:8123/octo/app.git"
        assert (source.name, source.github_full_name) == ("app", "octo/app")
    # Another port on the same host is another server.
    elsewhere = parse_repo_source("http://127.0.0.1:8124/octo/app.git", github_url=base)
    assert elsewhere.github_full_name is None
    assert elsewhere.url == "http://127.0.0.1:8124/octo/app.git"
    # github.com is then just another git host.
    plain = parse_repo_source("https://github.com/octo/app.git", github_url=base)
    assert plain.github_full_name is None
