"""The fingerprint of the secret key the database was written under (one row, or none yet)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_ignoring_conflicts, per_dialect
from storage.schema import (
    bookings,
    claims,
    complaint_messages,
    complaints,
    deployment_secrets,
    keyring,
    members,
    sessions,
)

_ROW = 1
_GET = select(keyring).where(keyring.c.id == _ROW)
# Only the first start writes it: two processes starting at once on a new database agree on one key.
_ADOPT = per_dialect(
    lambda d: (
        insert_ignoring_conflicts(d, keyring, ["id"])
        .values(id=_ROW, fingerprint=bindparam("fingerprint"), set_at=bindparam("at"))
        .returning(keyring.c.fingerprint)
    )
)
# A rotation moves from the key it was checked against, or not at all.
_REPLACE = (
    update(keyring)
    .where(keyring.c.id == _ROW, keyring.c.fingerprint == bindparam("old"))
    .values(fingerprint=bindparam("new"), set_at=bindparam("at"))
    .returning(keyring.c.id)
)


# One value written under the key, to tell whether a key is the right one for a database from before
# fingerprints were kept.
_ONE_PROTECTED = select(members.c.phone_enc).limit(1)

_MEMBERS_PROTECTED = select(members.c.id, members.c.member_number, members.c.phone_hash, members.c.phone_enc).order_by(
    members.c.id
)
_REWRITE_MEMBER = (
    update(members)
    .where(members.c.id == bindparam("member_id"))
    .values(phone_enc=bindparam("phone_enc"), phone_hash=bindparam("phone_hash"), card_code=bindparam("card_code"))
)
# Other columns written under the key, by table: a rotation re-encrypts each value found there. A new
# encrypted column must be added here, or a rotation leaves it unreadable.
ENCRYPTED = {
    "claims": (claims, ("payout_holder_enc", "payout_account_enc", "id_number_enc")),
    "bookings": (bookings, ("topic_enc",)),
    # Complaints' ids are strings: rows are addressed by whatever id their table has.
    "complaints": (complaints, ("description_enc",)),
    "complaint_messages": (complaint_messages, ("body_enc",)),
    # The receipt-code pepper: re-encrypted, never changed, so receipt codes keep working.
    "deployment_secrets": (deployment_secrets, ("value_enc",)),
}
_ENCRYPTED_ROWS = {name: select(t.c.id, *(t.c[c] for c in cols)) for name, (t, cols) in ENCRYPTED.items()}
_REWRITE_ENCRYPTED = {
    name: update(t).where(t.c.id == bindparam("row_id")).values({c: bindparam(f"new_{c}") for c in cols})
    for name, (t, cols) in ENCRYPTED.items()
}
_SESSIONS_WITH_DATA = select(sessions.c.user_key, sessions.c.data).where(sessions.c.data != "{}")
_REWRITE_SESSION = update(sessions).where(sessions.c.user_key == bindparam("key")).values(data=bindparam("data"))


@dataclass(frozen=True)
class ProtectedMember:
    id: int
    member_number: str
    phone_hash: str
    phone_enc: str


@dataclass(frozen=True)
class KeyFingerprint:
    fingerprint: str
    set_at: datetime


class KeyringRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self) -> KeyFingerprint | None:
        row = (await self.conn.execute(_GET)).first()
        return KeyFingerprint(row.fingerprint, row.set_at) if row else None

    async def adopt(self, fingerprint: str, at: datetime) -> str:
        """Record `fingerprint` unless one is recorded already; the recorded one either way."""
        params = {"fingerprint": fingerprint, "at": at}
        row = (await self.conn.execute(_ADOPT(self.conn), params)).first()
        if row is not None:
            return row.fingerprint
        current = await self.get()
        assert current is not None
        return current.fingerprint

    async def replace(self, old: str, new: str, at: datetime) -> bool:
        row = (await self.conn.execute(_REPLACE, {"old": old, "new": new, "at": at})).first()
        return row is not None

    async def one_protected_value(self) -> str | None:
        """A value encrypted under the key (a member's phone), or None when the database holds none."""
        row = (await self.conn.execute(_ONE_PROTECTED)).first()
        return row.phone_enc if row else None

    # -- rotation: every value written under the key, read and rewritten in the rotation's transaction --

    async def members_protected(self) -> list[ProtectedMember]:
        rows = await self.conn.execute(_MEMBERS_PROTECTED)
        return [ProtectedMember(r.id, r.member_number, r.phone_hash, r.phone_enc) for r in rows]

    async def rewrite_member(self, member_id: int, phone_enc: str, phone_hash: str, card_code: str) -> None:
        params = {"member_id": member_id, "phone_enc": phone_enc, "phone_hash": phone_hash, "card_code": card_code}
        await self.conn.execute(_REWRITE_MEMBER, params)

    async def sessions_with_data(self) -> list[tuple[str, str]]:
        """(user key, data as stored) of conversations holding something: a half-done join keeps the
        phone encrypted there."""
        return [(r.user_key, r.data) for r in await self.conn.execute(_SESSIONS_WITH_DATA)]

    async def rewrite_session_data(self, user_key: str, data: str) -> None:
        await self.conn.execute(_REWRITE_SESSION, {"key": user_key, "data": data})

    async def encrypted_rows(self, table: str) -> list[tuple[int | str, dict[str, str | None]]]:
        """(row id, {column: value as stored}) of every row of `table` in `ENCRYPTED`."""
        columns = ENCRYPTED[table][1]
        return [(r.id, {c: r._mapping[c] for c in columns}) for r in await self.conn.execute(_ENCRYPTED_ROWS[table])]

    async def rewrite_encrypted(self, table: str, row_id: int | str, values: dict[str, str | None]) -> None:
        params = {"row_id": row_id, **{f"new_{c}": v for c, v in values.items()}}
        await self.conn.execute(_REWRITE_ENCRYPTED[table], params)
