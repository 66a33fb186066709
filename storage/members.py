"""Members with their channel identities and consents, and the anonymous counters kept after they leave."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_for, insert_ignoring_conflicts, per_dialect, upsert_statement
from storage.schema import consents, counters, identities, members


@dataclass(frozen=True)
class Member:
    id: int
    member_number: str
    card_code: str
    phone_enc: str
    name: str
    platform: str
    work_kind: str
    source: str | None
    joined_at: datetime
    notices_muted: bool = False


@dataclass(frozen=True)
class Identity:
    user_key: str
    channel: str
    linked_at: datetime
    unreachable: bool


@dataclass(frozen=True)
class Consent:
    notice_version: str
    agreed_at: datetime


@dataclass(frozen=True)
class NewMember:
    member_number: str
    card_code: str
    phone_hash: str
    phone_enc: str
    name: str
    platform: str
    work_kind: str
    source: str | None
    joined_at: datetime


# A member whose typed phone number was already another member's has it kept (encrypted, in `phone_enc`)
# but not as a key to find anyone by: `phone_hash` holds this prefix and a random token instead, until
# staff see whose number it is. Telling the person "taken" would tell anyone who types a number whether
# its owner is in the union. (Key rotation must leave these hashes as they are.)
UNLINKED_PHONE = "unlinked:"


def unlinked_phone_hash() -> str:
    return UNLINKED_PHONE + secrets.token_hex(16)


def member_from(values: Mapping[str, Any]) -> Member:
    return Member(**{f.name: values[f.name] for f in fields(Member)})


def _member(row) -> Member:  # type: ignore[no-untyped-def]
    return member_from(row._mapping)


# Built once: these run on most turns, and building a statement costs more than running it here.
_BY_USER_KEY = select(members).join(identities).where(identities.c.user_key == bindparam("user_key"))
_BY_PHONE_HASH = select(members).where(members.c.phone_hash == bindparam("phone_hash"))
_PHONE_UNLINKED = (
    select(members).where(members.c.phone_hash.startswith(UNLINKED_PHONE, autoescape=True)).order_by(members.c.id)
)
_CREATE = per_dialect(
    lambda d: (
        insert_ignoring_conflicts(d, members, ["phone_hash"])
        .values({c.name: bindparam(c.name) for c in members.columns if c.name not in ("id", "notices_muted")})
        .returning(*members.columns)
    )
)
_LINK = per_dialect(lambda d: upsert_statement(d, identities, ["user_key"]))
_SET_PHONE = (
    update(members)
    .where(members.c.id == bindparam("member"))
    .values(phone_hash=bindparam("new_hash"), phone_enc=bindparam("new_enc"))
    .returning(*members.columns)
)
_SET_MUTED = (
    update(members)
    .where(members.c.id == bindparam("member"))
    .values(notices_muted=bindparam("muted"))
    .returning(*members.columns)
)
_ADD_CONSENT = insert(consents).values(
    member_id=bindparam("member_id"), notice_version=bindparam("version"), agreed_at=bindparam("at")
)
_NEXT = per_dialect(
    lambda d: (
        insert_for(d, counters)
        .values(name=bindparam("name"), value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": counters.c.value + 1})
        .returning(counters.c.value)
    )
)


class Members:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _one(self, *where) -> Member | None:  # type: ignore[no-untyped-def]
        row = (await self.conn.execute(select(members).where(*where))).first()
        return _member(row) if row else None

    async def by_user_key(self, user_key: str) -> Member | None:
        row = (await self.conn.execute(_BY_USER_KEY, {"user_key": user_key})).first()
        return _member(row) if row else None

    async def by_phone_hash(self, phone_hash: str) -> Member | None:
        row = (await self.conn.execute(_BY_PHONE_HASH, {"phone_hash": phone_hash})).first()
        return _member(row) if row else None

    async def phone_unlinked(self) -> list[Member]:
        """Members whose typed number was already another member's, for staff to resolve."""
        return [_member(r) for r in await self.conn.execute(_PHONE_UNLINKED)]

    async def by_number(self, number: str) -> Member | None:
        return await self._one(members.c.member_number == number)

    async def by_id(self, member_id: int) -> Member | None:
        return await self._one(members.c.id == member_id)

    async def by_card_code(self, code: str) -> Member | None:
        return await self._one(members.c.card_code == code)

    async def create(self, new: NewMember) -> Member | None:
        """Insert a member; None when that phone already belongs to one (one phone, one member)."""
        row = (await self.conn.execute(_CREATE(self.conn), new.__dict__)).first()
        return _member(row) if row else None

    async def set_phone(self, member_id: int, phone_hash: str, phone_enc: str) -> Member | None:
        """Give a member another phone (staff's change); None when there is no such member. A phone
        that is another member's breaks the unique constraint: callers look it up first."""
        values = {"member": member_id, "new_hash": phone_hash, "new_enc": phone_enc}
        row = (await self.conn.execute(_SET_PHONE, values)).first()
        return _member(row) if row else None

    async def set_muted(self, member_id: int, muted: bool) -> Member | None:
        """Turn the member's broadcast notices off (`muted`) or on; None when there is no such member."""
        row = (await self.conn.execute(_SET_MUTED, {"member": member_id, "muted": muted})).first()
        return _member(row) if row else None

    async def link(self, user_key: str, member_id: int, at: datetime) -> None:
        channel = user_key.split(":", 1)[0]
        values = {
            "user_key": user_key,
            "member_id": member_id,
            "channel": channel,
            "linked_at": at,
            "unreachable": False,
        }
        await self.conn.execute(_LINK(self.conn), values)

    async def identities(self, member_id: int) -> list[Identity]:
        rows = await self.conn.execute(
            select(identities).where(identities.c.member_id == member_id).order_by(identities.c.linked_at)
        )
        return [Identity(r.user_key, r.channel, r.linked_at, r.unreachable) for r in rows]

    async def set_unreachable(self, user_key: str, unreachable: bool = True) -> None:
        await self.conn.execute(
            update(identities).where(identities.c.user_key == user_key).values(unreachable=unreachable)
        )

    async def add_consent(self, member_id: int, notice_version: str, at: datetime) -> None:
        await self.conn.execute(_ADD_CONSENT, {"member_id": member_id, "version": notice_version, "at": at})

    async def consents(self, member_id: int) -> list[Consent]:
        rows = await self.conn.execute(
            select(consents).where(consents.c.member_id == member_id).order_by(consents.c.id)
        )
        return [Consent(r.notice_version, r.agreed_at) for r in rows]

    async def all(self) -> list[Member]:
        return [_member(r) for r in await self.conn.execute(select(members).order_by(members.c.id))]

    async def count(self) -> int:
        return (await self.conn.execute(select(func.count()).select_from(members))).scalar_one()

    async def delete(self, member_id: int) -> None:
        # Children first: SQLite enforces ON DELETE CASCADE only with foreign_keys on, PostgreSQL always.
        for table in (identities, consents):
            await self.conn.execute(delete(table).where(table.c.member_id == member_id))
        await self.conn.execute(delete(members).where(members.c.id == member_id))

    async def next_counter(self, name: str) -> int:
        return (await self.conn.execute(_NEXT(self.conn), {"name": name})).scalar_one()

    async def counter(self, name: str) -> int:
        row = (await self.conn.execute(select(counters.c.value).where(counters.c.name == name))).first()
        return row.value if row else 0
