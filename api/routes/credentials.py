from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert

from api.deps import KeyringDep, ScopeDep
from api.schemas.credentials import CredentialOut, CredentialProvider, CredentialPut
from db.access import NotFoundError
from db.credentials import credential_context
from db.models import Credential

router = APIRouter(prefix="/me/credentials", tags=["credentials"])


def _out(row: Credential) -> CredentialOut:
    return CredentialOut(
        provider=CredentialProvider(row.provider),
        last4=row.last4,
        base_url=row.base_url,
        updated_at=row.updated_at,
    )


@router.get("", response_model=list[CredentialOut])
async def list_credentials(scope: ScopeDep) -> list[CredentialOut]:
    rows = await scope.session.scalars(scope.select(Credential).order_by(Credential.provider))
    return [_out(row) for row in rows]


@router.put("/{provider}", response_model=CredentialOut)
async def put_credential(
    provider: CredentialProvider, body: CredentialPut, scope: ScopeDep, keyring: KeyringDep
) -> CredentialOut:
    sealed = keyring.encrypt_text(
        body.api_key, context=credential_context(scope.user_id, provider.value)
    )
    values = {
        "key_id": sealed.key_id,
        "ciphertext": sealed.ciphertext,
        "last4": body.api_key[-4:],
        "base_url": str(body.base_url) if body.base_url else None,
        # A key set by hand does not expire: drop what a previous OAuth token left behind.
        "expires_at": None,
        "refresh_ciphertext": None,
        "refresh_expires_at": None,
    }
    row = await scope.session.scalar(
        insert(Credential)
        .values(user_id=scope.user_id, provider=provider.value, **values)
        .on_conflict_do_update(
            index_elements=["user_id", "provider"],
            set_={**values, "updated_at": func.now()},
        )
        .returning(Credential)
    )
    await scope.session.commit()
    assert row is not None
    return _out(row)


@router.delete("/{provider}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credential(provider: CredentialProvider, scope: ScopeDep) -> None:
    result = await scope.session.execute(
        delete(Credential).where(
            Credential.user_id == scope.user_id, Credential.provider == provider.value
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError("credential")
    await scope.session.commit()
