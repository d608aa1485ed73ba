from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config.settings import Settings
from security.crypto import (
    DecryptionError,
    InvalidKeyError,
    Keyring,
    SealedSecret,
    generate_key,
    keyring_from_settings,
)


def test_round_trip_and_fresh_nonce() -> None:
    ring = Keyring(generate_key())
    one = ring.encrypt_text("sk-secret", context="credential:u:anthropic")
    two = ring.encrypt_text("sk-secret", context="credential:u:anthropic")
    assert one.ciphertext != two.ciphertext
    assert b"sk-secret" not in one.ciphertext
    assert ring.decrypt_text(one, context="credential:u:anthropic") == "sk-secret"


def test_wrong_context_or_tampering_fails() -> None:
    ring = Keyring(generate_key())
    sealed = ring.encrypt_text("sk-secret", context="credential:alice:openai")
    with pytest.raises(DecryptionError):
        ring.decrypt_text(sealed, context="credential:bob:openai")
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.decrypt_text(
            SealedSecret(sealed.key_id, bytes(flipped)), context="credential:alice:openai"
        )


def test_rotation_keeps_old_secrets_readable() -> None:
    old_key, new_key = generate_key(), generate_key()
    old_ring = Keyring(old_key)
    sealed_old = old_ring.encrypt_text("before", context="c")
    rotated = Keyring(new_key, [old_key])
    assert rotated.active_key_id != old_ring.active_key_id
    assert rotated.decrypt_text(sealed_old, context="c") == "before"
    sealed_new = rotated.encrypt_text("after", context="c")
    assert sealed_new.key_id == rotated.active_key_id
    with pytest.raises(DecryptionError, match="no key with id"):
        old_ring.decrypt_text(sealed_new, context="c")


def test_invalid_keys_are_refused() -> None:
    for bad in ("short", "!!!!", generate_key()[:-8]):
        with pytest.raises(InvalidKeyError):
            Keyring(bad)


def test_local_mode_key_is_generated_once_with_private_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = keyring_from_settings(settings)
    second = keyring_from_settings(settings)
    assert first.active_key_id == second.active_key_id
    key_file = tmp_path / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_configured_key_wins_over_the_data_dir(tmp_path: Path) -> None:
    key = generate_key()
    ring = keyring_from_settings(Settings(data_dir=tmp_path, encryption_key=key))
    assert ring.active_key_id == Keyring(key).active_key_id
    assert not (tmp_path / "encryption.key").exists()
