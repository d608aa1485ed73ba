from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakes.github import FakeGitHub

CLIENT_ID = "Iv1.fakeclient"
SECRET = "s3cret"
CALLBACK = "http://127.0.0.1:9/auth/callback"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as github:
        yield github


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        yield client


def api(
    http: httpx.Client, github: FakeGitHub, token: str, path: str, **params: str | int
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    return http.get(f"{github.api_url}{path}", headers=headers, params=params)


def authorize(http: httpx.Client, github: FakeGitHub, state: str = "st4te") -> dict[str, list[str]]:
    response = http.get(
        f"{github.url}/login/oauth/authorize",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": CALLBACK,
            "state": state,
            "scope": "repo read:user user:email",
        },
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return parse_qs(location.query)


def exchange(http: httpx.Client, github: FakeGitHub, **form: str) -> dict[str, object]:
    response = http.post(
        f"{github.url}/login/oauth/access_token",
        data={"client_id": CLIENT_ID, "client_secret": SECRET, **form},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert isinstance(data, dict)
    return data


def test_oauth_round_trip(github: FakeGitHub, http: httpx.Client) -> None:
    github.register_oauth_app(CLIENT_ID, SECRET)
    github.add_user("alice", name="Alice", email="alice@example.invalid")

    denied = authorize(http, github)
    assert denied["error"] == ["access_denied"] and denied["state"] == ["st4te"]

    github.sign_in_as("alice")
    query = authorize(http, github)
    assert query["state"] == ["st4te"]
    code = query["code"][0]

    wrong = http.post(
        f"{github.url}/login/oauth/access_token",
        data={"client_id": CLIENT_ID, "client_secret": "nope", "code": code},
        headers={"Accept": "application/json"},
    )
    assert wrong.status_code == 200
    assert wrong.json()["error"] == "incorrect_client_credentials"

    token = exchange(http, github, code=code, redirect_uri=CALLBACK)
    assert token["token_type"] == "bearer"
    assert token["scope"] == "repo,read:user,user:email"
    access = str(token["access_token"])
    assert access.startswith("gho_")
    assert "refresh_token" not in token and "expires_in" not in token

    again = exchange(http, github, code=code)
    assert again["error"] == "bad_verification_code"
    assert "error_description" in again and "error_uri" in again

    user = api(http, github, access, "/user")
    assert user.status_code == 200
    assert user.headers["content-type"] == "application/json; charset=utf-8"
    body = user.json()
    assert body["login"] == "alice" and body["name"] == "Alice" and body["type"] == "User"
    assert body["email"] == "alice@example.invalid"
    assert {"id", "node_id", "avatar_url", "html_url"} <= body.keys()
    assert api(http, github, access, "/user/emails").json()[0]["primary"] is True

    github.deny_next_authorization()
    assert authorize(http, github)["error"] == ["access_denied"]
    assert "code" in authorize(http, github)

    bad_client = http.get(f"{github.url}/login/oauth/authorize", params={"client_id": "x"})
    assert bad_client.status_code == 400

    github.revoke_token(access)
    revoked = api(http, github, access, "/user")
    assert revoked.status_code == 401
    assert revoked.json()["message"] == "Bad credentials"
    assert ("GET", "/api/v3/user") in github.requests


def test_form_encoded_token_answer_and_basic_client_auth(
    github: FakeGitHub, http: httpx.Client
) -> None:
    github.register_oauth_app(CLIENT_ID, SECRET)
    github.sign_in_as("alice")
    code = authorize(http, github)["code"][0]
    response = http.post(
        f"{github.url}/login/oauth/access_token",
        data={"code": code},
        auth=(CLIENT_ID, SECRET),
    )
    assert response.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = parse_qs(response.text)
    assert form["token_type"] == ["bearer"]
    assert api(http, github, form["access_token"][0], "/user").json()["login"] == "alice"


def test_expiring_tokens_refresh_and_expire(github: FakeGitHub, http: httpx.Client) -> None:
    github.register_oauth_app(CLIENT_ID, SECRET, expiring_tokens=True, access_token_ttl=1.0)
    github.sign_in_as("alice")
    token = exchange(http, github, code=authorize(http, github)["code"][0])
    access, refresh = str(token["access_token"]), str(token["refresh_token"])
    assert access.startswith("ghu_") and refresh.startswith("ghr_")
    assert token["expires_in"] == 1
    assert token["refresh_token_expires_in"] == 15897600
    assert api(http, github, access, "/user").status_code == 200

    renewed = exchange(http, github, grant_type="refresh_token", refresh_token=refresh)
    new_access, new_refresh = str(renewed["access_token"]), str(renewed["refresh_token"])
    assert new_access.startswith("ghu_") and new_refresh != refresh
    assert api(http, github, new_access, "/user").status_code == 200
    # The used refresh token and the access token it replaced are both dead.
    assert api(http, github, access, "/user").status_code == 401
    reused = exchange(http, github, grant_type="refresh_token", refresh_token=refresh)
    assert reused["error"] == "bad_refresh_token"

    time.sleep(1.1)
    expired = api(http, github, new_access, "/user")
    assert expired.status_code == 401
    assert expired.json()["message"] == "Bad credentials"
    third = exchange(http, github, grant_type="refresh_token", refresh_token=new_refresh)
    assert api(http, github, str(third["access_token"]), "/user").status_code == 200


def test_user_repos_paginate_with_link_headers(github: FakeGitHub, http: httpx.Client) -> None:
    token = github.add_user("alice")
    for index in range(33):
        github.create_repo("alice", f"repo-{index:02d}")
    github.create_repo("bob", "shared")
    github.create_repo("bob", "hidden")
    github.grant("bob", "shared", "alice")
    github.create_repo("carol", "public", private=False)  # readable, but not alice's
    github.touch_repo("alice", "repo-05")

    first = api(http, github, token, "/user/repos", per_page=10, sort="updated")
    assert first.status_code == 200
    names = [r["full_name"] for r in first.json()]
    assert names[0] == "alice/repo-05"
    assert names[1] == "bob/shared"
    assert first.links["next"]["url"].endswith("page=2")
    assert "sort=updated" in first.links["next"]["url"]
    assert first.links["last"]["url"].endswith("page=4")
    assert "prev" not in first.links

    seen: list[str] = []
    url: str | None = first.links["next"]["url"]
    seen += names
    while url:
        page = http.get(url, headers={"Authorization": f"token {token}"})
        seen += [r["full_name"] for r in page.json()]
        url = page.links.get("next", {}).get("url")
        if url is None:
            assert "prev" in page.links and "first" in page.links
    assert len(seen) == len(set(seen)) == 34
    assert "bob/hidden" not in seen and "carol/public" not in seen

    by_name = api(http, github, token, "/user/repos", per_page=100).json()
    assert [r["full_name"] for r in by_name] == sorted(seen, key=str.lower)
    assert "Link" not in api(http, github, token, "/user/repos", per_page=100).headers
    owned = api(http, github, token, "/user/repos", affiliation="owner", per_page=100).json()
    assert len(owned) == 33


def test_repo_json_and_visibility(github: FakeGitHub, http: httpx.Client) -> None:
    alice = github.add_user("alice")
    github.add_user("bob")
    created = github.create_repo("alice", "app", description="An app", default_branch="trunk")
    github.create_repo("bob", "secret")
    github.create_repo("bob", "open", private=False)

    repo = api(http, github, alice, "/repos/alice/app").json()
    assert repo == created
    assert repo["full_name"] == "alice/app" and repo["owner"]["login"] == "alice"
    assert repo["private"] is True and repo["default_branch"] == "trunk"
    assert repo["description"] == "An app"
    assert repo["html_url"] == f"{github.url}/alice/app"
    assert repo["clone_url"] == f"{github.url}/alice/app.git"
    assert repo["permissions"] == {
        "admin": True,
        "maintain": True,
        "push": True,
        "triage": True,
        "pull": True,
    }
    assert repo["updated_at"].endswith("Z") and repo["pushed_at"].endswith("Z")

    hidden = api(http, github, alice, "/repos/bob/secret")
    assert hidden.status_code == 404
    assert hidden.json()["message"] == "Not Found"
    assert api(http, github, alice, "/repos/bob/missing").status_code == 404
    public = api(http, github, alice, "/repos/bob/open").json()
    assert public["permissions"]["push"] is False and public["permissions"]["pull"] is True
    anonymous = http.get(f"{github.api_url}/repos/bob/open").json()
    assert "permissions" not in anonymous

    unknown = api(http, github, alice, "/nope")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json; charset=utf-8"
    assert http.get(f"{github.api_url}/user").status_code == 401


def test_branches(github: FakeGitHub, http: httpx.Client) -> None:
    token = github.add_user("alice")
    github.create_repo("alice", "app", branches=[f"b{i:02d}" for i in range(4)])
    sha = github.commit_to("alice", "app", "feature", {"x.txt": "x\n"})

    branches = api(http, github, token, "/repos/alice/app/branches", per_page=3)
    assert [b["name"] for b in branches.json()] == ["b00", "b01", "b02"]
    assert branches.links["next"]["url"].endswith("page=2")
    assert branches.links["last"]["url"].endswith("page=2")
    rest = http.get(branches.links["next"]["url"], headers={"Authorization": f"Bearer {token}"})
    assert "next" not in rest.links and rest.links["first"]["url"].endswith("page=1")
    items = rest.json()
    assert [b["name"] for b in items] == ["b03", "feature", "main"]
    assert items[1] == {
        "name": "feature",
        "commit": {"sha": sha, "url": f"{github.api_url}/repos/alice/app/commits/{sha}"},
        "protected": False,
    }
    assert items[2]["commit"]["sha"] == github.ref_sha("alice", "app", "refs/heads/main")
    one = api(http, github, token, "/repos/alice/app/branches/feature").json()
    assert one["commit"]["sha"] == sha


def test_pull_requests(github: FakeGitHub, http: httpx.Client) -> None:
    token = github.add_user("alice")
    viewer = github.add_user("viewer")
    github.create_repo("alice", "app", branches=["same"], private=False)
    head_sha = github.commit_to("alice", "app", "feature", {"f.txt": "f\n"})
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{github.api_url}/repos/alice/app/pulls"
    payload = {"title": "Add f", "head": "alice:feature", "base": "main", "body": "Body"}

    created = http.post(url, json={**payload, "draft": True}, headers=headers)
    assert created.status_code == 201, created.text
    pull = created.json()
    assert pull["number"] == 1 and pull["state"] == "open" and pull["draft"] is True
    assert pull["html_url"] == f"{github.url}/alice/app/pull/1"
    assert pull["url"] == f"{github.api_url}/repos/alice/app/pulls/1"
    assert pull["head"]["ref"] == "feature" and pull["head"]["sha"] == head_sha
    assert pull["head"]["label"] == "alice:feature"
    assert pull["base"]["ref"] == "main" and pull["user"]["login"] == "alice"
    assert pull["body"] == "Body" and pull["created_at"].endswith("Z")

    duplicate = http.post(url, json={**payload, "head": "feature"}, headers=headers)
    assert duplicate.status_code == 422
    error = duplicate.json()
    assert error["message"] == "Validation Failed"
    assert error["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for alice:feature.",
        }
    ]

    found = http.get(url, params={"state": "open", "head": "alice:feature"}, headers=headers)
    assert [p["number"] for p in found.json()] == [1]
    none = http.get(url, params={"head": "alice:other"}, headers=headers)
    assert none.json() == []
    assert http.get(url, params={"state": "closed"}, headers=headers).json() == []

    missing = http.post(url, json={**payload, "head": "nope"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"resource": "PullRequest", "field": "head", "code": "invalid"}
    ]
    empty = http.post(url, json={**payload, "head": "same"}, headers=headers)
    assert empty.status_code == 422
    assert "No commits between main and same" in empty.json()["errors"][0]["message"]

    forbidden = http.post(url, json=payload, headers={"Authorization": f"Bearer {viewer}"})
    assert forbidden.status_code == 403

    github.close_pull("alice", "app", 1)
    assert http.get(url, headers=headers).json() == []
    second = http.post(url, json=payload, headers=headers)
    assert second.status_code == 201 and second.json()["number"] == 2
    assert [p["number"] for p in github.pulls("alice", "app")] == [1, 2]


def test_api_failures_and_rate_limit(github: FakeGitHub, http: httpx.Client) -> None:
    token = github.add_user("alice")
    github.fail_next_api(1, status=502)
    assert api(http, github, token, "/user").status_code == 502
    github.fail_next_api(1, status=403, retry_after=7)
    limited = api(http, github, token, "/user")
    assert limited.status_code == 403
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert api(http, github, token, "/user").status_code == 200


def test_git_over_the_same_origin(github: FakeGitHub, tmp_path: Path) -> None:
    token = github.add_user("alice")
    github.create_repo("alice", "app", files={"a.txt": "A\n"})
    github.create_repo("alice", "other")
    home = tmp_path / "home"
    home.mkdir()
    store = home / "credentials"
    port = github.url.rsplit(":", 1)[1]
    store.write_text(f"http://x-access-token:{token}@127.0.0.1:{port}\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "A",
        "GIT_AUTHOR_EMAIL": "a@example.invalid",
        "GIT_COMMITTER_NAME": "A",
        "GIT_COMMITTER_EMAIL": "a@example.invalid",
    }
    helper = ["-c", "credential.helper=", "-c", f"credential.helper=store --file={store}"]

    def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *helper, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )

    work = tmp_path / "app"
    cloned = git("clone", "-q", github.clone_url("alice", "app"), str(work))
    assert cloned.returncode == 0, cloned.stderr
    assert (work / "a.txt").read_text() == "A\n"

    (work / "b.txt").write_text("B\n")
    assert git("add", "b.txt", cwd=work).returncode == 0
    assert git("commit", "-q", "-m", "b", cwd=work).returncode == 0
    github.fail_next_git(1)
    assert git("push", "-q", "origin", "main", cwd=work).returncode != 0
    pushed = git("push", "-q", "origin", "main:refs/heads/feature", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    assert github.ref_sha("alice", "app", "refs/heads/feature") is not None
    assert any(
        r.service == "git-receive-pack" and r.login == "alice" and r.status == 200
        for r in github.git_requests
    )
    # Git traffic is not REST traffic.
    assert all(".git/" not in path for _, path in github.requests)
    with httpx.Client() as http:
        recent = api(http, github, token, "/user/repos", sort="pushed").json()
    assert [r["name"] for r in recent] == ["app", "other"]

    github.revoke_token(token)
    refused = git("fetch", "origin", cwd=work)
    assert refused.returncode != 0
