"""Opening stored provider credentials (AES-GCM, bound to owner and provider)."""

from __future__ import annotations

import uuid

from db.models import Credential
from security.crypto import Keyring, SealedSecret


def credential_context(user_id: uuid.UUID | str, provider: str) -> str:
    """Associated data: a ciphertext copied onto another user's or provider's row won't open."""
    return f"credential:{user_id}:{provider}"


def open_credential(keyring: Keyring, row: Credential) -> str:
    sealed = SealedSecret(key_id=row.key_id, ciphertext=row.ciphertext)
    return keyring.decrypt_text(sealed, context=credential_context(row.user_id, row.provider))
