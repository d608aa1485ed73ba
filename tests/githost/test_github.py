from __future__ import annotations

import httpx
import pytest

from githost.github import (
    GitHubAuthError,
    GitHubClient,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnavailable,
)
from tests.conftest import free_port
from tests.fakes.github import FakeGitHub


class RecordingTransport(httpx.AsyncHTTPTransport):
    """Real HTTP; remembers the requests that went out."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await super().handle_async_request(request)


async def test_profile_and_request_headers(fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice", name="Alice A", email="alice@example.invalid")
    transport = RecordingTransport()
    async with GitHubClient(fake_github.api_url, token, transport=transport) as github:
        user = await github.get_user()
    assert (user.login, user.name, user.email) == ("alice", "Alice A", "alice@example.invalid")
    assert user.id > 0 and user.avatar_url
    headers = transport.sent[0].headers
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["authorization"] == f"Bearer {token}"
    assert headers["user-agent"].startswith("upstream")


async def test_private_email_comes_from_the_emails_endpoint(fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("quiet", email="quiet@example.invalid", email_private=True)
    async with GitHubClient(fake_github.api_url, token) as github:
        assert (await github.get_user()).email is None
        assert await github.get_primary_email() == "quiet@example.invalid"


async def test_repo_pages_follow_the_link_header(fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice")
    for index in range(5):
        fake_github.create_repo("alice", f"repo{index}", description=f"number {index}")
        fake_github.touch_repo("alice", f"repo{index}", at=1_700_000_000 + index)
    async with GitHubClient(fake_github.api_url, token) as github:
        first = await github.list_user_repos(page=1, per_page=2)
        last = await github.list_user_repos(page=3, per_page=2)
    # Most recently updated first.
    assert [r.name for r in first.items] == ["repo4", "repo3"]
    assert first.has_next and (first.page, first.per_page) == (1, 2)
    assert [r.name for r in last.items] == ["repo0"] and not last.has_next
    repo = first.items[0]
    assert repo.full_name == "alice/repo4" and repo.owner == "alice" and repo.private
    assert repo.clone_url == f"{fake_github.url}/alice/repo4.git"
    assert repo.default_branch == "main" and repo.description == "number 4"
    assert repo.updated_at is not None and repo.updated_at.year == 2023


async def test_search_matches_name_and_description_case_insensitively(
    fake_github: FakeGitHub,
) -> None:
    token = fake_github.add_user("alice")
    fake_github.create_repo("alice", "Widget-API")
    fake_github.create_repo("alice", "docs", description="Everything about widgets")
    fake_github.create_repo("alice", "widget-ui")
    fake_github.create_repo("alice", "unrelated")
    async with GitHubClient(fake_github.api_url, token) as github:
        everything = await github.search_user_repos("WIDGET", page=1, per_page=10)
        first = await github.search_user_repos("widget", page=1, per_page=2)
        second = await github.search_user_repos("widget", page=2, per_page=2)
        none = await github.search_user_repos("nothing-like-this")
    assert {r.name for r in everything.items} == {"Widget-API", "docs", "widget-ui"}
    assert len(first.items) == 2 and first.has_next
    assert len(second.items) == 1 and not second.has_next
    assert {r.name for r in first.items + second.items} == {r.name for r in everything.items}
    assert none.items == [] and not none.has_next


async def test_repo_visibility_and_branches(fake_github: FakeGitHub) -> None:
    alice = fake_github.add_user("alice")
    bob = fake_github.add_user("bob")
    fake_github.create_repo("alice", "app", default_branch="trunk", branches=["a", "b", "c"])
    async with GitHubClient(fake_github.api_url, alice) as github:
        repo = await github.get_repo("alice/app")
        page1 = await github.list_branches("alice/app", page=1, per_page=3)
        page2 = await github.list_branches("alice/app", page=2, per_page=3)
    assert repo.default_branch == "trunk" and repo.private
    names = [b.name for b in page1.items + page2.items]
    assert sorted(names) == ["a", "b", "c", "trunk"]
    assert page1.has_next and not page2.has_next
    assert all(len(b.sha) == 40 and not b.protected for b in page1.items)
    # A private repository someone cannot see is a 404, as on GitHub.
    async with GitHubClient(fake_github.api_url, bob) as github:
        with pytest.raises(GitHubNotFound):
            await github.get_repo("alice/app")


async def test_create_pull_is_idempotent(fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice")
    fake_github.create_repo("alice", "app", branches=["feature"])
    fake_github.commit_to("alice", "app", "feature", {"new.txt": "x\n"})
    async with GitHubClient(fake_github.api_url, token) as github:
        assert await github.find_open_pull("alice/app", "alice", "feature", "main") is None
        pull = await github.create_pull(
            "alice/app", title="Add new", body="Body", head="feature", base="main", draft=True
        )
        again = await github.create_pull(
            "alice/app", title="Add new", body=None, head="alice:feature", base="main"
        )
        found = await github.find_open_pull("alice/app", "alice", "feature", "main")
    assert pull.number == again.number == 1
    assert found == pull
    assert pull.draft and pull.state == "open" and pull.title == "Add new"
    assert pull.html_url == f"{fake_github.url}/alice/app/pull/1"
    assert len(fake_github.pulls("alice", "app")) == 1


async def test_errors_are_typed(fake_github: FakeGitHub) -> None:
    token = fake_github.add_user("alice")
    fake_github.create_repo("alice", "app")
    async with GitHubClient(fake_github.api_url, token) as github:
        fake_github.fail_next_api(1, status=502)
        with pytest.raises(GitHubUnavailable) as unavailable:
            await github.get_user()
        assert unavailable.value.status == 502

        fake_github.fail_next_api(1, status=403, retry_after=30)
        with pytest.raises(GitHubRateLimited) as limited:
            await github.get_user()
        assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 30
        assert "rate limit" in limited.value.message

        with pytest.raises(GitHubNotFound):
            await github.get_repo("alice/missing")

        fake_github.revoke_token(token)
        with pytest.raises(GitHubAuthError) as rejected:
            await github.get_user()
        assert rejected.value.status == 401
        assert "GitHub rejected the token" in rejected.value.message
        assert token not in rejected.value.message

    async with GitHubClient(f"http://127.0.0.1:{free_port()}/api/v3", token) as github:
        with pytest.raises(GitHubUnavailable) as unreachable:
            await github.get_user()
    assert unreachable.value.status is None
