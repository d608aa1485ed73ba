"""What a repository's remote may be given: the owner's GitHub token, and only for a repository
on the configured GitHub. Loaded (and refreshed) inside activities, never passed in."""

from __future__ import annotations

import uuid

from config.settings import Settings
from db.engine import SessionFactory
from db.models import Repo
from githost.tokens import github_token_for
from gitops.credentials import GitCredentials
from security.crypto import Keyring


class RepoAccess:
    def __init__(self, sessions: SessionFactory, keyring: Keyring, settings: Settings) -> None:
        self._sessions = sessions
        self._keyring = keyring
        self.settings = settings

    def on_github(self, repo: Repo) -> bool:
        origin = self.settings.github_url.rstrip("/") + "/"
        return repo.github_full_name is not None or repo.url.startswith(origin)

    async def github_token(self, user_id: uuid.UUID | str, repo: Repo) -> str | None:
        """None for a repository elsewhere (its remote never sees the token) or without a
        stored token; raises `GitHubTokenExpired` when the token lapsed for good."""
        if not self.on_github(repo):
            return None
        return await github_token_for(self._sessions, self._keyring, self.settings, user_id)

    async def git_credentials(self, user_id: uuid.UUID | str, repo: Repo) -> GitCredentials | None:
        token = await self.github_token(user_id, repo)
        return GitCredentials.github_token(token) if token else None
