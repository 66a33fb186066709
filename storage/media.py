"""Files people sent, by their content hash, and the records they belong to.

A row is added by the media store when a file has been fetched and checked, in a transaction of its
own before the turn (no file I/O inside a turn); the turn then links it to its owner with one
conditional statement. A row that no turn linked (the turn failed, the rider cancelled) is purged
later with `purge_unlinked`, and the file with it once no row names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import media


@dataclass(frozen=True)
class MediaRecord:
    id: str
    sha256: str
    mime: str
    size: int
    owner_kind: str | None
    owner_id: str | None
    created_at: datetime


def _record(row) -> MediaRecord:  # type: ignore[no-untyped-def]
    m = row._mapping
    return MediaRecord(m["id"], m["sha256"], m["mime"], m["size"], m["owner_kind"], m["owner_id"], m["created_at"])


_ADD = (
    insert(media)
    .values(
        id=bindparam("id"),
        sha256=bindparam("sha256"),
        mime=bindparam("mime"),
        size=bindparam("size"),
        created_at=bindparam("created_at"),
    )
    .returning(*media.columns)
)
_UNLINKED = media.c.owner_kind.is_(None)
# Only an unlinked file can be linked: one statement, so two turns cannot both claim it, and a row
# purged meanwhile answers no row rather than an error.
_LINK = (
    update(media)
    .where(media.c.id == bindparam("media_id"), _UNLINKED)
    .values(owner_kind=bindparam("owner_kind"), owner_id=bindparam("owner_id"))
    .returning(media.c.id)
)
_LINK_COARSE = (
    update(media)
    .where(media.c.id == bindparam("media_id"), _UNLINKED)
    .values(owner_kind=bindparam("owner_kind"), owner_id=bindparam("owner_id"), created_at=bindparam("day"))
    .returning(media.c.id)
)
_GET = select(media).where(media.c.id == bindparam("media_id"))
_OWNED = (
    select(media)
    .where(media.c.owner_kind == bindparam("owner_kind"), media.c.owner_id == bindparam("owner_id"))
    .order_by(media.c.created_at, media.c.id)
)
_PURGE = delete(media).where(_UNLINKED, media.c.created_at < bindparam("before")).returning(media.c.sha256)
_DELETE_OWNED = delete(media).where(
    media.c.owner_kind == bindparam("owner_kind"), media.c.owner_id == bindparam("owner_id")
)


class MediaRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, media_id: str, sha256: str, mime: str, size: int, created_at: datetime) -> MediaRecord:
        values = {"id": media_id, "sha256": sha256, "mime": mime, "size": size, "created_at": created_at}
        return _record((await self.conn.execute(_ADD, values)).one())

    async def link(self, media_id: str, owner_kind: str, owner_id: str, *, coarse_time: datetime | None = None) -> bool:
        """Attach a fetched file to its owner, e.g. `link(stored.id, "claim", "LP2026-000123")`. False when
        it is already someone's or no longer there (purged): the flow then asks for the file again.

        With `coarse_time` (an anonymous flow passes `turn.now`), the row keeps only that day, so the
        moment a file arrived cannot tie it to the message that brought it."""
        params = {"media_id": media_id, "owner_kind": owner_kind, "owner_id": owner_id}
        if coarse_time is None:
            row = (await self.conn.execute(_LINK, params)).first()
        else:
            day = datetime.combine(coarse_time.date(), time(0), coarse_time.tzinfo)
            row = (await self.conn.execute(_LINK_COARSE, {**params, "day": day})).first()
        return row is not None

    async def get(self, media_id: str) -> MediaRecord | None:
        row = (await self.conn.execute(_GET, {"media_id": media_id})).first()
        return _record(row) if row else None

    async def owned_by(self, owner_kind: str, owner_id: str) -> list[MediaRecord]:
        rows = await self.conn.execute(_OWNED, {"owner_kind": owner_kind, "owner_id": owner_id})
        return [_record(r) for r in rows]

    async def delete_owned(self, owner_kind: str, owner_id: str) -> None:
        """Forget a record's files; their content goes with the next `purge_unlinked`."""
        await self.conn.execute(_DELETE_OWNED, {"owner_kind": owner_kind, "owner_id": owner_id})

    async def purge_unlinked(self, before: datetime) -> set[str]:
        """Delete rows no turn linked, made before `before`; the content hashes they named."""
        return {r.sha256 for r in await self.conn.execute(_PURGE, {"before": before})}

    async def referenced(self, sha256s: Iterable[str]) -> set[str]:
        """Those of these content hashes that some row still names."""
        wanted = list(set(sha256s))
        if not wanted:
            return set()
        rows = await self.conn.execute(select(media.c.sha256).where(media.c.sha256.in_(wanted)).distinct())
        return {r.sha256 for r in rows}
