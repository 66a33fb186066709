"""Members for broadcast tests: many at once, on Telegram (chat id = 10_000 + n) and WeChat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from storage import Tx
from storage.members import NewMember
from storage.schema import members
from storage.sessions import Session

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CHAT_BASE = 10_000


def chat_of(n: int) -> int:
    return CHAT_BASE + n


async def add_members(
    tx: Tx,
    count: int,
    *,
    start: int = 1,
    platform: str = "美团",
    work_kind: str = "delivery_rider",
    source: str | None = None,
    joined_at: datetime = NOW - timedelta(days=100),
    wechat_too: bool = False,
    lang: str | None = None,
) -> list[int]:
    ids = []
    for n in range(start, start + count):
        member = await tx.members.create(
            NewMember(
                member_number=f"HB2026{n:06d}",
                card_code=f"CARD{n:06d}",
                phone_hash=f"hash-{n}",
                phone_enc="enc",
                name="rider",
                platform=platform,
                work_kind=work_kind,
                source=source,
                joined_at=joined_at,
            )
        )
        assert member is not None
        await tx.members.link(f"telegram:{chat_of(n)}", member.id, NOW)
        if wechat_too:
            await tx.members.link(f"wechat:o{n}", member.id, NOW + timedelta(seconds=1))
        if lang:
            await tx.sessions.save(Session(user_key=f"telegram:{chat_of(n)}", lang=lang))
        ids.append(member.id)
    return ids


async def mute(tx: Tx, member_ids: list[int]) -> None:
    await tx.conn.execute(update(members).where(members.c.id.in_(member_ids)).values(notices_muted=True))
