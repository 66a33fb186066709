"""Members turn the union's notices off and on (关闭通知 / 打开通知, /mute / /unmute, mute / unmute) from
anywhere: the setting is stored and shown in 我的信息, what they were doing is kept and asked again, and
someone who is not a member is told they get no notices anyway."""

from __future__ import annotations

import pytest

from bot.flows.notices import MUTE_WORDS, UNMUTE_WORDS
from storage.sessions import Session
from tests.chat import Chat, join

STILL_COME = "理赔、预约和活动报名的消息还是会照常发给您"
STILL_COME_EN = "Messages about your own claim, booking or event sign-up still come"


async def muted(app, user_key: str) -> bool | None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key(user_key)
    return None if member is None else member.notices_muted


async def session_of(app, user_key: str) -> Session | None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.sessions.get(user_key)


@pytest.mark.parametrize(("off", "on"), [("关闭通知", "打开通知"), ("不要通知", "打开通知"), ("mute", "unmute")])
async def test_words_turn_notices_off_and_on(bot, off: str, on: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat)
    assert await muted(app, "console:alice") is False
    out = await chat.say(off)
    assert "工会通知已经关了" in out.text and STILL_COME in out.text and "打开通知" in out.text
    assert await muted(app, "console:alice") is True
    out = await chat.say(off)  # again: nothing changes, and it says so
    assert "本来就是关着的" in out.text and await muted(app, "console:alice") is True
    out = await chat.say(on)
    assert "工会通知已经打开" in out.text and "关闭通知" in out.text
    assert await muted(app, "console:alice") is False
    out = await chat.say(on)
    assert "本来就是开着的" in out.text


@pytest.mark.parametrize("word", MUTE_WORDS + UNMUTE_WORDS)
async def test_every_word_works(bot, word: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat)
    await chat.say(f" {word.upper()} ")  # as typed: spaces and capitals do not matter
    assert await muted(app, "console:alice") is (word in MUTE_WORDS)


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize("word", [*MUTE_WORDS, *UNMUTE_WORDS, "/mute", "/unmute"])
async def test_every_word_mid_claim_keeps_the_step(bot, lang: str, word: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, language_hint=lang)
    await join(chat)
    if word in UNMUTE_WORDS or word == "/unmute":
        async with app.db.transaction() as tx:
            await tx.members.set_muted((await tx.members.by_user_key("console:alice")).id, True)
    asked = await chat.command("/claim")  # which kind of claim
    before = await session_of(app, "console:alice")
    out = await (chat.command(word) if word.startswith("/") else chat.say(word))
    muting = word in MUTE_WORDS or word == "/mute"
    assert await muted(app, "console:alice") is muting
    said = {("zh_CN", True): "工会通知已经关了", ("zh_CN", False): "工会通知已经打开"}
    said |= {("en", True): "union notices are off", ("en", False): "union notices are on"}
    assert said[(lang, muting)] in out.text
    assert (STILL_COME if lang == "zh_CN" else STILL_COME_EN) in out.text or not muting
    assert ("您刚才办的事还给您留着" if lang == "zh_CN" else "carry on where you left off") in out.text
    assert out.text.endswith(asked.text.split("\n\n")[-1]) and chat.labels() == [b.label for b in asked.buttons]
    after = await session_of(app, "console:alice")
    assert (after.flow, after.step, after.data) == (before.flow, before.step, before.data)


async def test_commands_in_english(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, channel="telegram", user="7", language_hint="en")
    await join(chat)
    out = await chat.command("/mute")
    assert "union notices are off" in out.text and STILL_COME_EN in out.text and '"unmute"' in out.text
    assert await muted(app, "telegram:7") is True
    out = await chat.command("/unmute")
    assert "union notices are on" in out.text and await muted(app, "telegram:7") is False
    # After either, the menu is asked again: there was nothing in progress.
    assert "My data" in chat.labels() and "Carry on" not in out.text


async def test_muting_mid_claim_keeps_the_step_and_what_was_said(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat)
    await chat.say("我要理赔")
    asked = await chat.tap("意外伤害")  # the kind is kept; now the date, in the date picker it called
    before = await session_of(app, "console:alice")
    out = await chat.say("关闭通知")
    assert "工会通知已经关了" in out.text and "您刚才办的事还给您留着" in out.text
    assert out.text.endswith(asked.text.split("\n\n")[-1])  # the same question again
    after = await session_of(app, "console:alice")
    assert (after.flow, after.step, after.data) == (before.flow, before.step, before.data)
    assert await muted(app, "console:alice") is True
    # Unmuting by the command keeps it too, and the claim carries on from there.
    out = await chat.command("/unmute")
    assert "工会通知已经打开" in out.text
    assert (await session_of(app, "console:alice")).step == before.step
    await chat.tap("今天")  # the picker gives the date back to the claim it was called from
    assert (await session_of(app, "console:alice")).flow == "claim"


async def test_from_my_data_with_the_setting_shown(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat)
    out = await chat.say("我的信息")
    assert "工会通知：接收" in out.text and "关闭工会通知" in chat.labels()
    out = await chat.tap("关闭工会通知")
    assert "工会通知已经关了" in out.text
    assert "工会通知：已关闭" in out.text and "打开工会通知" in chat.labels()  # my data again, as it is now
    assert await muted(app, "console:alice") is True
    # Muted by word elsewhere: my data shows it, and the words keep my data open.
    out = await chat.say("打开通知")
    assert "工会通知：接收" in out.text and (await session_of(app, "console:alice")).flow == "mydata"


async def test_my_data_in_english_shows_the_setting(bot) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1], language_hint="en")
    await join(chat)
    await chat.say("mute")
    out = await chat.say("my data")
    assert "Union notices: off" in out.text and "Turn union notices on" in chat.labels()


NOT_MEMBER = [("zh_CN", "关闭通知", "本来就不会收到"), ("en", "/mute", "don't get any")]


@pytest.mark.parametrize(("lang", "word", "said"), NOT_MEMBER)
async def test_a_non_member_gets_no_notices_anyway(bot, lang: str, word: str, said: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, language_hint=lang)
    out = await (chat.command(word) if word.startswith("/") else chat.say(word))
    assert said in out.text
    async with app.db.transaction() as tx:
        assert await tx.members.count() == 0


async def test_a_non_member_mid_join_keeps_the_join_step(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/start")
    asked_phone = await chat.tap("同意")
    out = await chat.say("不要通知")
    assert "本来就不会收到" in out.text and out.text.endswith(asked_phone.text.split("\n\n")[-1])
    assert (await session_of(app, "console:alice")).step == "phone"


async def test_a_conversation_that_timed_out_is_not_resumed(bot) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat)
    await chat.say("我要理赔")
    later = app.now() + timedelta(minutes=app.settings.session_timeout_minutes + 1)
    app.now = lambda: later
    out = await chat.say("关闭通知")
    assert "工会通知已经关了" in out.text and "您刚才办的事还给您留着" not in out.text
    assert (await session_of(app, "console:alice")).flow in (None, "menu")


async def test_set_muted_is_one_statement_returning_the_member(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    await join(Chat(dispatcher))
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key("console:alice")
        assert (await tx.members.set_muted(member.id, True)).notices_muted is True
        assert (await tx.members.set_muted(member.id, False)).notices_muted is False
        assert await tx.members.set_muted(member.id + 100, True) is None


async def test_inside_an_anonymous_flow_nothing_is_changed_and_the_draft_is_kept(bot) -> None:  # type: ignore[no-untyped-def]
    from bot.engine.flow import Flow, Turn

    if "anonymous" not in Flow.__dataclass_fields__:
        pytest.skip("the engine has no anonymous flows")
    app, dispatcher = bot
    secret = Flow("secret_test", words=("secret test",), anonymous=True)

    @secret.start
    async def _start(turn: Turn, payload: str) -> None:
        turn.goto("what")

    @secret.ask("what")
    async def _ask(turn: Turn) -> None:
        turn.say("notices.carry_on")  # any sentence will do as its question

    @secret.on("what")
    async def _on(turn: Turn) -> None:
        turn.data["draft"] = turn.text
        turn.retry()

    app.flows[secret.name] = secret
    chat = Chat(dispatcher)
    await join(chat)
    await chat.say("secret test")
    await chat.say("something private")
    out = await chat.say("关闭通知")
    assert "匿名投诉" in out.text and "工会通知已经关了" not in out.text
    assert await muted(app, "console:alice") is False
    session = await session_of(app, "console:alice")
    assert (session.flow, session.step, session.data["draft"]) == ("secret_test", "what", "something private")
