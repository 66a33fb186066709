"""The engine's anonymous mode (`Flow(anonymous=True)`): inside such a flow nobody can be named; its
turns keep no answer with their dedupe marker and log nothing that names the sender; its draft is
encrypted in the session and dropped at submission, on cancel, on switching away and on timeout; and
once its conversation ends the database is scrubbed (the -wal file truncated)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.engine.access import Access
from bot.engine.checks import FlowCheckError, check_flows
from bot.engine.flow import AnonymousFlowError, Flow, Turn
from bot.engine.messages import Incoming, Kind
from bot.flows import complain as complain_flow
from bot.runtime import tidy
from storage.schema import processed_updates, sessions
from tests.chat import Chat, join
from tests.test_complain_flow import SECRET_TEXT, complain, receipt_of, step_of, t

DRAFT_FIELDS = (
    complain_flow.TARGET_KIND,
    complain_flow.TARGET,
    complain_flow.CATEGORY,
    complain_flow.RATINGS,
    complain_flow.DESCRIPTION,
)


# -- nobody can be named ------------------------------------------------------------------------------------
def probing_flow(anonymous: bool) -> tuple[Flow, dict[str, str]]:
    """A flow whose entry, ask and handler each ask who the sender is, every way there is."""
    seen: dict[str, str] = {}
    flow = Flow(f"probe_{anonymous}", commands=(f"probe{int(anonymous)}",), anonymous=anonymous)

    async def probe(turn: Turn, where: str) -> None:
        asks = {
            "user_key": lambda: turn.user_key,
            "incoming.user_key": lambda: turn.incoming.user_key,
            "incoming.user_id": lambda: turn.incoming.user_id,
            "incoming.display_name": lambda: turn.incoming.display_name,
            "incoming.contact": lambda: turn.incoming.contact,
            "session.user_key": lambda: turn.session.user_key,
        }
        for name, ask in asks.items():
            try:
                ask()
                seen[f"{where}:{name}"] = "answered"
            except AnonymousFlowError:
                seen[f"{where}:{name}"] = "refused"
        for name in ("member", "staffer"):
            try:
                await getattr(turn, name)()
                seen[f"{where}:{name}"] = "answered"
            except AnonymousFlowError:
                seen[f"{where}:{name}"] = "refused"
        seen[f"{where}:tag"] = turn.anonymous_tag
        seen[f"{where}:text"] = turn.incoming.text  # what was sent stays readable

    @flow.start
    async def start(turn: Turn, payload: str) -> None:
        await probe(turn, "start")
        turn.goto("step")

    @flow.ask("step")
    async def ask(turn: Turn) -> None:
        await probe(turn, "ask")

    @flow.on("step")
    async def on(turn: Turn) -> None:
        turn.finish()  # even after leaving itself, its code stays sealed
        await probe(turn, "on")

    return flow, seen


async def test_inside_an_anonymous_flow_the_sender_cannot_be_reached(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    await join(Chat(dispatcher, "ann"))
    async with app.db.transaction() as tx:
        await tx.staff.add("console:ann", "admin", "Ann", app.now())
    sealed, seen = probing_flow(anonymous=True)
    app.flows[sealed.name] = sealed
    chat = Chat(dispatcher, "ann")
    await chat.command("/probe1")
    await chat.say("hello")
    refused = {k for k, v in seen.items() if v == "refused"}
    for where in ("start", "ask", "on"):
        for name in ("user_key", "member", "staffer", "session.user_key", "incoming.user_key", "incoming.user_id"):
            assert f"{where}:{name}" in refused
        assert f"{where}:incoming.contact" in refused and f"{where}:incoming.display_name" in refused
    assert seen["on:text"] == "hello"
    # The tag tells senders apart within this process, and says nothing of who they are.
    tags = {seen["start:tag"], seen["on:tag"]}
    assert len(tags) == 1 and "ann" not in seen["on:tag"] and len(seen["on:tag"]) == 32
    other_seen = probing_flow(anonymous=True)
    app.flows[sealed.name], seen2 = other_seen
    await Chat(dispatcher, "bob").command("/probe1")
    assert seen2["start:tag"] != seen["start:tag"]


async def test_an_ordinary_flow_still_knows_who_is_there(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    await join(Chat(dispatcher, "cy"))
    flow, seen = probing_flow(anonymous=False)
    app.flows[flow.name] = flow
    await Chat(dispatcher, "cy").command("/probe0")
    assert seen["start:user_key"] == seen["start:member"] == seen["ask:incoming.user_id"] == "answered"


def test_an_anonymous_flow_that_would_not_admit_anyone_stops_the_start() -> None:
    from bot.flows import all_flows

    flows = all_flows()
    assert flows["complain"].anonymous and flows["track"].anonymous
    members_only = Flow("secret_ballot", anonymous=True, access=Access.members())
    with pytest.raises(FlowCheckError, match=r"secret_ballot.*anonymous"):
        check_flows({**flows, members_only.name: members_only})


async def test_leaving_for_a_members_flow_or_start_looks_the_member_up_outside(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "leaver")
    await chat.say("投诉")
    await chat.tap(0)
    out = await chat.say("理赔")  # a members-only flow's word: asked who they are only once out
    assert t("engine.sorry") not in out.text and "得先入会" in out.text
    await chat.say("投诉")
    out = await chat.command("/start")
    assert t("engine.sorry") not in out.text


# -- the dedupe marker ---------------------------------------------------------------------------------------
async def test_an_anonymous_turn_keeps_no_answer_and_a_repeat_does_nothing_twice(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    numbers = iter(range(1000, 2000))

    def incoming(kind: Kind = Kind.TEXT, **fields) -> Incoming:  # type: ignore[no-untyped-def]
        return Incoming("telegram", "4242", kind, dedupe_key=str(next(numbers)), **fields)

    async def send(text: str) -> tuple[Incoming, list]:  # type: ignore[type-arg]
        sent = incoming(text=text)
        return sent, await dispatcher.handle(sent)

    await send("/menu")  # an ordinary turn: its answer is kept for a redelivery
    for text in ("投诉", "1", "美团", "1", "7", SECRET_TEXT, "1"):
        await send(text)
    last, out = await send("1")  # send
    code = receipt_of(out[0])
    async with app.db.transaction() as tx:
        replies = [r.reply for r in (await tx.conn.execute(select(processed_updates).order_by("processed_at"))).all()]
    assert len(replies) == 9
    assert replies[0] is not None and all(r is None for r in replies[1:])
    # The platform delivers the submitting update again: no second complaint, and no code shown again.
    again = await dispatcher.handle(last)
    assert again == [] and code not in json.dumps([o.to_json() for o in again])
    async with app.db.transaction() as tx:
        assert (await tx.conn.execute(select(processed_updates.c.key))).all()
    from storage.schema import complaints
    from tests.test_complain_flow import count

    assert await count(app, complaints) == 1


# -- the draft in the session ----------------------------------------------------------------------------------
async def session_row(app, user_key: str):  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return (await tx.conn.execute(select(sessions).where(sessions.c.user_key == user_key))).first()


def draft_in(row) -> dict:  # type: ignore[no-untyped-def]
    data = json.loads(row.data) if row is not None else {}
    return {k: v for k, v in data.items() if k in DRAFT_FIELDS or k == complain_flow.PICTURES}


async def test_every_draft_field_is_encrypted_in_the_session_and_wiped_at_submission(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "enc")
    await chat.say("投诉")
    await chat.tap(0)
    await chat.say("美团")
    await chat.tap(t("complain.cat_pay"))
    await chat.say("2")
    await chat.tap(-1)
    await chat.say(SECRET_TEXT)
    row = await session_row(app, "console:enc")
    fields = draft_in(row)
    assert set(fields) == set(DRAFT_FIELDS)
    for name, value in fields.items():
        assert value.startswith("gAAAAA"), name  # a Fernet token
        assert json.loads(app.keyring.decrypt(value)) is not None or name == complain_flow.TARGET
    for clear in ("美团", "pay", SECRET_TEXT, "labour_relations"):
        assert clear not in row.data
    await chat.tap(0)
    await chat.tap(t("complain.send"))
    row = await session_row(app, "console:enc")
    assert row.flow == "menu" and json.loads(row.data) == {}


async def a_draft(chat: Chat) -> None:
    await chat.say("投诉")
    await chat.tap(0)
    await chat.say("美团")
    await chat.tap(0)
    await chat.tap(-1)
    await chat.say(SECRET_TEXT)


@pytest.mark.parametrize("how", ["取消", "/cancel", "菜单", "理赔", "/start", "我的信息"])
async def test_a_cancelled_or_abandoned_draft_is_dropped(bot, how: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "quit")
    await a_draft(chat)
    assert draft_in(await session_row(app, "console:quit"))
    await (chat.command(how) if how.startswith("/") else chat.say(how))
    assert draft_in(await session_row(app, "console:quit")) == {}
    assert (await step_of(app, "console:quit"))[0] != "complain"


async def test_a_timed_out_draft_is_dropped_when_they_write_again_or_by_housekeeping(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    clock = [app.now()]
    app.now = lambda: clock[0]
    late, idle = Chat(dispatcher, "late"), Chat(dispatcher, "idle")
    await a_draft(late)
    await a_draft(idle)
    clock[0] += timedelta(minutes=app.settings.session_timeout_minutes + 1)
    out = await late.say("还在吗")
    assert t("engine.timed_out") in out.text
    assert draft_in(await session_row(app, "console:late")) == {}
    await tidy(app)  # the idle one never writes again: housekeeping wipes it, and its old pages
    assert draft_in(await session_row(app, "console:idle")) == {}
    assert wal_size(app) == 0


# -- scrubbing ----------------------------------------------------------------------------------------------------
def wal_size(app) -> int:  # type: ignore[no-untyped-def]
    return Path(app.settings.database_url.split(":///", 1)[1] + "-wal").stat().st_size


async def test_the_log_is_truncated_once_the_conversation_ends(bot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    scrubs = []
    real = app.db.scrub

    async def counted() -> bool:
        scrubs.append(1)
        return await real()

    monkeypatch.setattr(app.db, "scrub", counted)
    chat = Chat(dispatcher, "scrub")
    await a_draft(chat)
    assert scrubs == [] and wal_size(app) > 0  # mid-conversation: nothing to scrub yet
    await chat.tap(0)
    await chat.tap(t("complain.send"))
    assert scrubs == [1] and wal_size(app) == 0
    await a_draft(chat)
    await chat.say("取消")
    assert scrubs == [1, 1] and wal_size(app) == 0
    await chat.command("/menu")  # ordinary turns scrub nothing
    assert scrubs == [1, 1]


# -- logs -------------------------------------------------------------------------------------------------------------
async def logged_complaint(bot, caplog, monkeypatch, **env: str) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """`gigunion`'s own logging set-up at DEBUG, then a whole complaint and its follow-up: what was
    logged, the receipt code and the complaint's id."""
    from bot.cli.common import configure
    from bot.logging_setup import SQL_LOGGERS

    app, dispatcher = bot
    levels = {name: logging.getLogger(name).level for name in SQL_LOGGERS}
    for name, value in {"GIGUNION_LOG_LEVEL": "DEBUG", **env}.items():
        monkeypatch.setenv(name, value)
    configure(None)
    caplog.set_level(logging.DEBUG)
    try:
        chat = Chat(dispatcher, "whistle7788", display_name="Li Lei")
        code = await complain(chat, ratings=(2, 3))
        await chat.say("查询进度")
        await chat.say("1111 2222 3333 4444")
        await chat.say(code)
        await chat.tap(t("track.add"))
        await chat.say("补充的话五六七八")
        await chat.tap(t("track.done"))
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records)
    async with app.db.transaction() as tx:
        from tests.test_complain_flow import service

        found = await service.by_receipt(app, tx, code)
    assert found is not None
    return logged, code, found.id


async def test_a_whole_complaint_and_follow_up_at_debug_logs_no_one(bot, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    logged, code, complaint_id = await logged_complaint(bot, caplog, monkeypatch)
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    for secret in ("whistle7788", "Li Lei", SECRET_TEXT, "补充的话", code, code[:4], complaint_id):
        assert secret not in logged, secret


async def test_the_log_check_would_see_a_user_key(bot, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """So the check above can fail: an engine that logged whom each turn is for, at DEBUG, is caught."""
    from bot.engine import dispatcher as engine

    turn = engine.Dispatcher._turn

    async def chatty(self, incoming):  # type: ignore[no-untyped-def]
        engine.log.debug("turn for %s", incoming.user_key)
        return await turn(self, incoming)

    monkeypatch.setattr(engine.Dispatcher, "_turn", chatty)
    logged, _, _ = await logged_complaint(bot, caplog, monkeypatch)
    assert "whistle7788" in logged


# -- PostgreSQL ---------------------------------------------------------------------------------------------------
async def test_the_same_on_postgresql(make_settings) -> None:  # type: ignore[no-untyped-def]
    """No answer kept, the draft encrypted then dropped, the thread both ways; the scrub has nothing to do."""
    from bot.runtime import running_bot
    from tests.test_postgres import postgres_database

    async with postgres_database() as url, running_bot(make_settings(database_url=url)) as (app, dispatcher):
        numbers = iter(range(1, 100))
        chat = Chat(dispatcher, "pg", channel="telegram")
        chat.incoming = lambda kind, **f: Incoming("telegram", "pg", kind, dedupe_key=str(next(numbers)), **f)  # type: ignore[method-assign]
        await a_draft(chat)
        fields = draft_in(await session_row(app, "telegram:pg"))
        assert fields and all(value.startswith("gAAAAA") for value in fields.values())
        await chat.tap(0)
        code = receipt_of(await chat.tap(t("complain.send", "zh_CN")))
        assert draft_in(await session_row(app, "telegram:pg")) == {}
        async with app.db.transaction() as tx:
            replies = [r.reply for r in (await tx.conn.execute(select(processed_updates.c.reply))).all()]
        assert replies and all(r is None for r in replies)
        assert await app.db.scrub()
        await chat.say("查询进度")
        assert "状态" in (await chat.say(code)).text
