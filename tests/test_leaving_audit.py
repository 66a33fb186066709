"""Leaving deletes the member, not the record of who looked at them: the audit rows stay under a
pseudonym that only the leaver is shown."""

from __future__ import annotations

import re

from sqlalchemy import select

from storage.schema import audit_log, metadata
from tests.chat import Chat, join

NUMBER = re.compile(r"HB\d{10}")
REFERENCE = re.compile(r"left-[0-9a-f]{12}")


async def everything_but_the_audit_log(app) -> str:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        rows = []
        for table in metadata.sorted_tables:
            if table is not audit_log:
                rows += [repr(tuple(r)) for r in await tx.conn.execute(select(table))]
    return "\n".join(rows)


async def test_leaving_keeps_the_audit_trail_under_a_pseudonym(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    alice = Chat(dispatcher, user="alice")
    card = await join(alice, phone="13912345678", name="王芳")
    number = NUMBER.search(card.text).group(0)
    code = card.text.split("核验码：")[1][:9]
    tg = Chat(dispatcher, channel="telegram", user="555")  # her second account
    await tg.command("/start")
    await tg.tap(0)
    await tg.contact("13912345678")
    bob_number = NUMBER.search((await join(Chat(dispatcher, user="bob"), phone="13700137000")).text).group(0)
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:1", "admin", "李老师", app.now())
    staff = Chat(dispatcher, channel="telegram", user="1")
    await staff.command("/staff")
    await staff.tap("核验会员证")
    assert "会员证有效" in (await staff.say(code)).text
    async with app.db.transaction() as tx:
        before = await tx.audit.about(number)
        bob_before = await tx.audit.about(bob_number)
    assert [e.action for e in before] == ["member.joined", "member.identity_linked", "card.verified"]

    await alice.say("退出工会")
    left = await alice.tap("确定退出")
    reference = REFERENCE.search(left.text).group(0)

    async with app.db.transaction() as tx:
        assert await tx.audit.about(number) == []
        after = await tx.audit.about(reference)
        assert [(e.at, e.actor, e.action) for e in after[:-1]] == [(e.at, e.actor, e.action) for e in before]
        assert after[-1].action == "member.left"
        # Who looked: the staffer's account, kept.
        assert [e.actor for e in after if e.action == "card.verified"] == ["telegram:1"]
        assert await tx.audit.about(bob_number) == bob_before  # nobody else's rows change
        rows = [tuple(r) for r in await tx.conn.execute(select(audit_log))]
        assert await tx.members.counter("members_left") == 1
    trail = repr(rows)
    for personal in (number, "王芳", "13912345678", "139****5678", app.keyring.lookup_hash("13912345678")):
        assert personal not in trail
    for account in ("console:alice", "telegram:555", "alice"):
        assert account not in trail
    # The pseudonym leads nowhere: nothing else in the database holds it, or her.
    rest = await everything_but_the_audit_log(app)
    assert reference not in rest and number not in rest and "王芳" not in rest


async def test_each_leaver_has_a_pseudonym_of_their_own_and_is_counted(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    references = []
    for i in range(2):
        chat = Chat(dispatcher, user=f"u{i}")
        await join(chat, phone=f"1390000000{i}")
        await chat.say("退出工会")
        references.append(REFERENCE.search((await chat.tap("确定退出")).text).group(0))
    assert references[0] != references[1]
    async with app.db.transaction() as tx:
        assert await tx.members.counter("members_left") == 2
        for reference in references:
            assert [e.action for e in await tx.audit.about(reference)] == ["member.joined", "member.left"]


async def test_english_leavers_are_given_their_reference_too(bot) -> None:  # type: ignore[no-untyped-def]
    _app, dispatcher = bot
    chat = Chat(dispatcher, language_hint="en")
    await join(chat)
    await chat.say("leave the union")
    left = await chat.tap("Yes")
    assert REFERENCE.search(left.text) and "who looked at your data" in left.text
