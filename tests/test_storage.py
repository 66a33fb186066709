"""Repository behaviour that flows rely on, on a real database file."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import bindparam

from storage import Database


async def test_a_lease_goes_to_one_process_at_a_time(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    other = Database(app.settings.database_url)  # a second process's connection to the same database
    now = app.now()

    async def take(db: Database, owner: str, at=now) -> bool:  # type: ignore[no-untyped-def]
        async with db.transaction() as tx:
            return await tx.tokens.take_lease("refresh", owner, at, at + timedelta(seconds=30))

    try:
        first, second = await asyncio.gather(take(app.db, "a"), take(other, "b"))
        assert sorted([first, second]) == [False, True]
        winner = "a" if first else "b"
        assert await take(app.db if winner == "a" else other, winner)  # the holder may renew
        assert not await take(other if winner == "a" else app.db, "b" if winner == "a" else "a")
        assert await take(other, "c", at=now + timedelta(seconds=31))  # an expired lease is free
    finally:
        await other.close()


async def test_old_update_markers_and_stored_answers_are_forgotten(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    now = app.now()
    async with app.db.transaction() as tx:
        await tx.updates.mark("old", now - timedelta(days=4), '["answer"]')
        await tx.updates.mark("recent", now - timedelta(hours=2), '["answer"]')
        await tx.updates.mark("new", now, '["answer"]')
        await tx.updates.forget_replies(now - timedelta(hours=1))
        await tx.updates.forget(now - timedelta(days=3))
        assert await tx.updates.seen("old") == (False, None)
        assert await tx.updates.seen("recent") == (True, None)
        assert await tx.updates.seen("new") == (True, '["answer"]')


async def test_a_member_marked_unreachable_is_reachable_again_once_they_write(bot) -> None:  # type: ignore[no-untyped-def]
    from tests.chat import Chat, join

    app, dispatcher = bot
    chat = Chat(dispatcher, channel="telegram", user="77")
    await join(chat)
    async with app.db.transaction() as tx:
        await tx.members.set_unreachable("telegram:77")  # they had blocked the bot
    await chat.command("/menu")
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key("telegram:77")
        assert [i.unreachable for i in await tx.members.identities(member.id)] == [False]


async def test_a_statement_missing_a_value_is_refused_not_run_with_null(bot) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from storage.schema import consents

    app, _ = bot
    statement = insert(consents).values(member_id=bindparam("member_id"), notice_version="v", agreed_at=bindparam("at"))
    with pytest.raises(KeyError):
        async with app.db.transaction() as tx:
            await tx.conn.execute(statement, {"member_id": 1})
