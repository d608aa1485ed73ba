"""Per-repo environment variables, sealed as one JSON object (values never leave the server)."""

from __future__ import annotations

import json

from db.models import Repo
from security.crypto import Keyring, SealedSecret


def _context(repo: Repo) -> str:
    return f"repo-env:{repo.id}"


def read_env(repo: Repo, keyring: Keyring) -> dict[str, str]:
    if repo.env_ciphertext is None or repo.env_key_id is None:
        return {}
    sealed = SealedSecret(key_id=repo.env_key_id, ciphertext=repo.env_ciphertext)
    data: dict[str, str] = json.loads(keyring.decrypt_text(sealed, context=_context(repo)))
    return data


def write_env(repo: Repo, env: dict[str, str], keyring: Keyring) -> None:
    if not env:
        repo.env_key_id, repo.env_ciphertext = None, None
        return
    sealed = keyring.encrypt_text(json.dumps(env, sort_keys=True), context=_context(repo))
    repo.env_key_id, repo.env_ciphertext = sealed.key_id, sealed.ciphertext


def env_keys(repo: Repo, keyring: Keyring) -> list[str]:
    return sorted(read_env(repo, keyring))
