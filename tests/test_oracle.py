"""A typed phone number never tells whether it belongs to a member.

Two bots with the same key: in one the number the prober types is a member's, in the other it is a
stranger's. Every message of the whole join, and what follows it, must be the same in both.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from bot.engine.messages import Outgoing
from bot.flows.join import PER_IDENTITY, phone_attempts
from bot.runtime import running_bot
from tests.chat import Chat, join

MEMBERS_PHONE, OTHER_PHONE = "13800138000", "13700137000"
CARD = 8  # the answer to the confirmation, in `prober_join`'s history


async def prober_join(chat: Chat, phone: str) -> list[Outgoing]:
    """A whole join by someone who types `phone`, changing it once on the way, and what they can see
    afterwards."""
    await chat.command("/start")
    await chat.tap(0)  # agree
    await chat.say(phone)
    await chat.say("李四")
    await chat.tap(0)  # platform
    await chat.tap(0)  # kind of work
    await chat.tap("手机号" if chat.history[-1].lang == "zh_CN" else "phone")
    await chat.say(phone.replace("138", "138-"))  # the same number again, typed otherwise
    await chat.tap(0)  # confirm
    await chat.say("我的信息")
    await chat.say("入会")
    await chat.command("/card")
    await chat.command("/menu")
    return chat.history


@pytest.mark.parametrize("channel", ["console", "wechat", "telegram"])
async def test_a_members_number_and_a_strangers_get_the_same_replies(make_settings, tmp_path, channel: str) -> None:  # type: ignore[no-untyped-def]
    async with AsyncExitStack() as stack:
        bots = []
        for name, phone in (("member", MEMBERS_PHONE), ("stranger", OTHER_PHONE)):
            folder = tmp_path / name
            folder.mkdir()
            settings = make_settings(database_url=f"sqlite+aiosqlite:///{folder / 'gigunion.db'}")
            app, dispatcher = await stack.enter_async_context(running_bot(settings))
            await join(Chat(dispatcher, user="owner"), phone=phone, name="张三")
            bots.append((app, dispatcher))
        (app, one), (_, other) = bots
        async with app.db.transaction() as tx:
            owner = await tx.members.by_user_key("console:owner")
            owner_identities = await tx.members.identities(owner.id)

        seen = [await prober_join(Chat(d, user="boss", channel=channel), MEMBERS_PHONE) for d in (one, other)]

        for step, (a, b) in enumerate(zip(*seen, strict=True)):
            assert a == b, f"message {step} differs"
        assert "隐私" in seen[0][0].text and "会员证" in seen[0][CARD].text  # a real join with a card
        # The rider's way to a human when the number was taken or changes, the same for everyone.
        assert "工作人员" in seen[0][CARD].text
        if channel == "wechat":
            assert not any("分享" in m.text for m in seen[0])  # WeChat has no share button
        async with app.db.transaction() as tx:
            # The member is untouched: same record, same accounts, the prober linked to neither.
            assert await tx.members.by_user_key("console:owner") == owner
            assert await tx.members.identities(owner.id) == owner_identities
            prober = await tx.members.by_user_key(f"{channel}:boss")
            assert prober is not None and prober.id != owner.id
            # Staff see whose number is waiting for them.
            assert [m.id for m in await tx.members.phone_unlinked()] == [prober.id]
            assert app.keyring.decrypt(prober.phone_enc) == MEMBERS_PHONE
            assert [e.action for e in await tx.audit.entries(2)] == ["member.phone_unlinked", "member.joined"]


async def test_english_replies_are_the_same_too(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with AsyncExitStack() as stack:
        seen = []
        for name, phone in (("member", MEMBERS_PHONE), ("stranger", OTHER_PHONE)):
            folder = tmp_path / name
            folder.mkdir()
            settings = make_settings(database_url=f"sqlite+aiosqlite:///{folder / 'gigunion.db'}")
            _, dispatcher = await stack.enter_async_context(running_bot(settings))
            await join(Chat(dispatcher, user="owner"), phone=phone)
            seen.append(await prober_join(Chat(dispatcher, user="boss", language_hint="en"), MEMBERS_PHONE))
        assert seen[0] == seen[1]
        assert "membership card" in seen[0][CARD].text and "staff" in seen[0][CARD].text


async def to_phone_step(chat: Chat) -> None:
    await chat.command("/start")
    await chat.tap(0)


async def test_typed_numbers_are_limited_per_identity(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, user="prober")
    numbers = [f"1390000{i:04d}" for i in range(PER_IDENTITY + 1)]
    for number in numbers[:PER_IDENTITY]:
        await to_phone_step(chat)
        assert "姓名" in (await chat.say(number)).text
        await chat.say("取消")
    await to_phone_step(chat)
    refused = await chat.say(numbers[-1])
    assert "一个小时" in refused.text and "人工" in refused.text
    async with app.db.transaction() as tx:
        assert (await tx.sessions.get("console:prober")).step == "phone"  # the conversation stays
    assert "姓名" in (await chat.say(numbers[0])).text  # a number already given is not a new try
    # Someone else is not held back by it, and an hour later the prober may try again.
    other = Chat(dispatcher, user="rider")
    await to_phone_step(other)
    assert "姓名" in (await other.say(numbers[-1])).text
    real_now = app.now
    app.now = lambda: real_now() + timedelta(minutes=61)
    await to_phone_step(chat)
    assert "姓名" in (await chat.say(numbers[-1])).text


async def test_typed_numbers_are_limited_overall(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    phone_attempts(app.db).overall = 3
    for i in range(3):
        chat = Chat(dispatcher, user=f"u{i}")
        await to_phone_step(chat)
        assert "姓名" in (await chat.say(f"1390000000{i}")).text
    late = Chat(dispatcher, user="late", channel="wechat")
    await to_phone_step(late)
    busy = await late.say("13900000009")
    assert "几分钟" in busy.text and "分享" not in busy.text
    # A number shared from Telegram is the sender's own: it is never held back, and still links.
    tg = Chat(dispatcher, user="7", channel="telegram")
    await to_phone_step(tg)
    assert "姓名" in (await tg.contact("13900000009")).text


async def test_a_verified_contact_still_links_to_the_member(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    await join(Chat(dispatcher, user="owner", channel="wechat"), phone=MEMBERS_PHONE)
    tg = Chat(dispatcher, channel="telegram", user="42")
    await to_phone_step(tg)
    linked = await tg.contact(MEMBERS_PHONE)
    assert "关联" in linked.text and "会员证" in linked.text
    async with app.db.transaction() as tx:
        assert await tx.members.by_user_key("telegram:42") == await tx.members.by_user_key("wechat:owner")
        assert await tx.members.phone_unlinked() == []
    assert (await Chat(dispatcher, channel="telegram", user="42").command("/card")).image is not None
