"""What is kept, shown and logged about a person."""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text

from bot.privacy import mask_name, mask_phone
from storage.schema import audit_log, consents, counters, identities, members, sessions
from tests.chat import Chat, join


async def test_no_personal_data_in_logs_of_a_whole_join(bot, caplog) -> None:  # type: ignore[no-untyped-def]
    _app, dispatcher = bot
    caplog.set_level(logging.DEBUG)
    chat = Chat(dispatcher, display_name="Wang Fang")
    await join(chat, phone="13912345678", name="王芳")
    await chat.say("我的信息")
    await chat.say("我想投诉一下站长")  # free text nobody asked for
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    logged = "\n".join(r.getMessage() for r in records)
    for secret in ("13912345678", "1391234", "王芳", "Wang Fang", "投诉一下站长"):
        assert secret not in logged


async def test_the_phone_number_is_not_stored_in_clear(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    await join(Chat(dispatcher), phone="13912345678")
    raw = app.settings.sqlite_path().read_bytes()
    wal = app.settings.sqlite_path().with_name("gigunion.db-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert b"13912345678" not in raw


async def test_my_data_shows_everything_held_masked(bot) -> None:  # type: ignore[no-untyped-def]
    _app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat, source="expo")
    shown = await chat.say("我的信息")
    for expected in ("张三", "138****8000", "expo", "console", "2026-11"):
        assert expected in shown.text
    assert "13800138000" not in shown.text


async def test_leaving_deletes_personal_data_and_keeps_a_count(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    card = await join(chat)
    code = card.text.split("核验码：")[1][:9]
    await Chat(dispatcher, channel="telegram", user="9").command("/start")  # someone else, untouched
    await chat.say("我的信息")
    confirm = await chat.tap("退出工会")
    assert "不能撤回" in confirm.text
    kept = await chat.tap("不退了")
    assert "还是我们的会员" in kept.text
    await chat.say("退出工会")
    done = await chat.tap("确定退出")
    assert "删除了" in done.text and "姓名" in done.text
    async with app.db.transaction() as tx:
        for table in (members, identities, consents):
            assert (await tx.conn.execute(select(func.count()).select_from(table))).scalar_one() == 0
        left = await tx.conn.execute(select(sessions.c.user_key))
        assert [r.user_key for r in left] == ["telegram:9"]
        assert (
            await tx.conn.execute(select(counters.c.value).where(counters.c.name == "members_left"))
        ).scalar_one() == 1
        subjects = {r.subject for r in await tx.conn.execute(select(audit_log.c.subject))}
        # The audit rows stay, under a pseudonym instead of the member number (tests/test_leaving_audit.py).
        assert all(s is None or s.startswith("left-") for s in subjects) and subjects != {None}
        from bot.services.membership import verify_card

        assert not (await verify_card(tx, app.keyring, app.profile, code)).genuine
    again = await chat.say("我的会员证")
    assert "还不是会员" in again.text


async def test_staff_verify_cards_in_the_bot(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    card = await join(Chat(dispatcher))
    code = card.text.split("核验码：")[1][:9]
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:1", "admin", "李老师", app.now())
    staff = Chat(dispatcher, channel="telegram", user="1")
    menu = await staff.command("/menu")
    assert "工作人员菜单" in [b.label for b in menu.buttons]
    await staff.tap("工作人员菜单")
    await staff.tap("核验会员证")
    ok = await staff.say(code.replace("-", " ").lower())
    assert "会员证有效" in ok.text and "张*" in ok.text and "138****8000" in ok.text
    bad = await staff.say("ZZZZ-ZZZZ")
    assert "查不到" in bad.text
    member = Chat(dispatcher)
    assert "工作人员菜单" not in [b.label for b in (await member.command("/menu")).buttons]
    refused = await member.command("/staff")
    assert "只对工会工作人员开放" in refused.text


def test_masks() -> None:
    assert mask_phone("13800138000") == "138****8000"
    assert mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧***"
    assert mask_name("Li Lei") == "L* L**"


async def test_sqlite_runs_in_wal_mode(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with app.db.transaction() as tx:
        assert (await tx.conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"


async def test_id_tells_people_their_own_account(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    out = await Chat(dispatcher, channel="telegram", user="123").command("/id")
    assert "telegram:123" in out.text
