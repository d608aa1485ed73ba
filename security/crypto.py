"""Encryption at rest for user secrets: AES-256-GCM with the key id stored beside the ciphertext.

A keyring holds the active key plus any number of retired keys. New secrets are always sealed
with the active key; a secret sealed with a retired key still opens, so keys can rotate without
re-encrypting everything at once. The key id is derived from the key itself (no naming scheme to
keep in sync across processes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import Settings

_NONCE_BYTES = 12
KEY_FILE_NAME = "encryption.key"


class DecryptionError(Exception):
    """Ciphertext could not be opened: unknown key id, wrong context, or tampered data."""


class InvalidKeyError(ValueError):
    """A configured key is not 32 bytes of urlsafe base64."""


@dataclass(frozen=True)
class SealedSecret:
    key_id: str
    ciphertext: bytes  # nonce || ciphertext || tag


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def key_id_for(raw_key: bytes) -> str:
    return hashlib.sha256(raw_key).hexdigest()[:16]


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError) as exc:
        raise InvalidKeyError("encryption key is not valid urlsafe base64") from exc
    if len(raw) != 32:
        raise InvalidKeyError("encryption key must decode to 32 bytes (AES-256)")
    return raw


class Keyring:
    def __init__(self, active: str, retired: list[str] | None = None) -> None:
        active_raw = _decode_key(active)
        self._active_id = key_id_for(active_raw)
        self._keys: dict[str, AESGCM] = {self._active_id: AESGCM(active_raw)}
        for text in retired or []:
            raw = _decode_key(text)
            self._keys.setdefault(key_id_for(raw), AESGCM(raw))

    @property
    def active_key_id(self) -> str:
        return self._active_id

    def encrypt(self, plaintext: bytes, *, context: str) -> SealedSecret:
        """`context` (e.g. "credential:<user>:<provider>") is bound as associated data, so a
        ciphertext copied onto another row does not open there."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._active_id].encrypt(nonce, plaintext, context.encode())
        return SealedSecret(key_id=self._active_id, ciphertext=nonce + sealed)

    def decrypt(self, secret: SealedSecret, *, context: str) -> bytes:
        cipher = self._keys.get(secret.key_id)
        if cipher is None:
            raise DecryptionError(f"no key with id {secret.key_id} in the keyring")
        nonce, body = secret.ciphertext[:_NONCE_BYTES], secret.ciphertext[_NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, body, context.encode())
        except InvalidTag as exc:
            raise DecryptionError("ciphertext failed authentication") from exc

    def encrypt_text(self, plaintext: str, *, context: str) -> SealedSecret:
        return self.encrypt(plaintext.encode(), context=context)

    def decrypt_text(self, secret: SealedSecret, *, context: str) -> str:
        return self.decrypt(secret, context=context).decode()


def _read_or_create_key_file(path: Path) -> str:
    """Local mode keeps its key in the data dir. O_EXCL makes the API and the worker, starting
    together, agree on one key instead of each writing its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    return path.read_text().strip()


def keyring_from_settings(settings: Settings) -> Keyring:
    if settings.encryption_key is not None:
        active = settings.encryption_key.get_secret_value()
    else:
        active = _read_or_create_key_file(settings.data_dir / KEY_FILE_NAME)
    retired: list[str] = []
    if settings.encryption_old_keys is not None:
        retired = [k for k in settings.encryption_old_keys.get_secret_value().split(",") if k]
    return Keyring(active, retired)
