"""Events: the database holds the places (100 members at once for 10 places through the dispatcher, on
SQLite, on PostgreSQL, and from two processes on one SQLite file: 10 confirmed, 90 waiting), one sign-up
per member, a cancel promotes the first waiting member exactly once (also when cancels race), the
refusals, check-in by card code, the reminder job and an event called off tell members through the
outbox (mute or not), and the words of a notice's button."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.runtime import running_bot
from bot.services import events as service
from bot.services.crypto import CARD_QR_PREFIX, format_card_code
from bot.services.events import EventRefused
from bot.services.jobs import run_due
from storage import Tx
from storage.events import CANCELLED, CONFIRMED, WAITING, Event, SignUp
from storage.members import Member, NewMember
from storage.schema import members as members_table
from storage.schema import outbox
from storage.sessions import Session
from tests.chat import Chat
from tests.test_claims_domain import NOW, SECRET, open_app
from tests.test_postgres import postgres_database

ROOT = str(Path(__file__).resolve().parents[1])
STARTS = NOW + timedelta(days=5)  # 2026-12-05 10:00 in Shanghai
RACERS, PLACES = 100, 10


@pytest.fixture(params=["sqlite", "postgresql"])
async def app(request, tmp_path: Path) -> AsyncIterator[BotContext]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        bot = await open_app(url, tmp_path)
        bot.now = lambda: NOW
        yield bot
        await bot.db.close()


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[BotContext]:
    bot = await open_app(f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}", tmp_path)
    bot.now = lambda: NOW
    yield bot
    await bot.db.close()


async def new_event(
    app: BotContext,
    *,
    capacity: int = PLACES,
    starts_at: datetime = STARTS,
    deadline: datetime | None = None,
    title: str = "微笑集市",
) -> Event:
    async with app.db.transaction() as tx:
        return await service.create_event(
            app,
            tx,
            title=title,
            description="免费理发、测血压、手机贴膜",
            station="0",
            place=None,
            starts_at=starts_at,
            signup_deadline=deadline or starts_at - timedelta(hours=2),
            capacity=capacity,
            created_by="cli:test",
        )


async def add_members(app: BotContext, count: int, first: int = 1, *, identities: bool = False) -> list[Member]:
    """Members with real card codes; with `identities`, a console identity `console:r<n>` each (Chinese)
    and a Telegram one that chose English."""
    made = []
    async with app.db.transaction() as tx:
        for n in range(first, first + count):
            number = f"HB2026{n:06d}"
            member = await tx.members.create(
                NewMember(
                    number, app.keyring.card_code(number), f"h{n}", "enc", f"骑手{n}", "美团", "courier", None, NOW
                )
            )
            assert member is not None
            if identities:
                await tx.members.link(f"console:r{n}", member.id, NOW)
                await tx.members.link(f"telegram:{n}", member.id, NOW)
                await tx.sessions.save(Session(user_key=f"telegram:{n}", lang="en"))
            made.append(member)
    return made


async def try_sign_up(app: BotContext, event_id: int, member_id: int, now: datetime = NOW) -> str:
    """A sign-up in a turn of its own: its status, or the reason it was refused."""

    async def turn(tx: Tx) -> str:
        try:
            return (await service.sign_up(app, tx, event_id, member_id, now)).status
        except EventRefused as e:
            return e.key

    return await app.db.run_turn(turn)


async def try_cancel(app: BotContext, event_id: int, member_id: int) -> str:
    async def turn(tx: Tx) -> str:
        try:
            return (await service.cancel_signup(app, tx, event_id, member_id, NOW)).status
        except EventRefused as e:
            return e.key

    return await app.db.run_turn(turn)


async def event_now(app: BotContext, event_id: int) -> Event:
    async with app.db.transaction() as tx:
        event = await tx.events.get(event_id)
    assert event is not None
    return event


async def signups(app: BotContext, event_id: int) -> list[SignUp]:
    async with app.db.transaction() as tx:
        return [s.signup for s in await tx.events.listed(event_id)]


async def outbox_rows(app: BotContext) -> list[tuple[str, str, str]]:
    async with app.db.transaction() as tx:
        rows = await tx.conn.execute(select(outbox.c.user_key, outbox.c.body).order_by(outbox.c.id))
        return [(r.user_key, json.loads(r.body)["lang"], json.loads(r.body)["text"]) for r in rows]


def assert_ten_and_ninety(rows: list[SignUp], event: Event) -> None:
    confirmed = [s for s in rows if s.status == CONFIRMED]
    waiting = [s for s in rows if s.status == WAITING]
    assert (len(confirmed), len(waiting)) == (PLACES, RACERS - PLACES)
    assert len({s.member_id for s in rows}) == RACERS  # one row per member
    assert event.taken == PLACES


# -- capacity, held by the database -----------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
async def running(request, tmp_path: Path) -> AsyncIterator[tuple[BotContext, Dispatcher]]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        settings = Settings(database_url=url, secret_key=SECRET, home=str(tmp_path))
        app, dispatcher = await stack.enter_async_context(running_bot(settings, run_jobs=False))
        app.now = lambda: NOW
        yield app, dispatcher


async def test_100_members_tapping_sign_up_at_once_for_10_places_through_the_dispatcher(running) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = running
    event = await new_event(app)
    members = await add_members(app, RACERS, identities=True)
    chats = [Chat(dispatcher, f"r{n}") for n in range(1, RACERS + 1)]
    # The words of a notice's sign-up button, as every member's phone sends them at once.
    answers = await asyncio.gather(*(c.say(service.signup_words(event.id, "zh_CN")) for c in chats))
    texts = [a.text for a in answers]
    assert sum("报上了" in t for t in texts) == PLACES
    assert sum("候补名单" in t and "报满" in t for t in texts) == RACERS - PLACES
    rows = await signups(app, event.id)
    assert_ten_and_ninety(rows, await event_now(app, event.id))
    # Each waiting member was told their own place in line: 1 to 90, each once.
    async with app.db.transaction() as tx:
        positions = sorted([await tx.events.position(s) for s in rows if s.status == WAITING])  # type: ignore[type-var]
    assert positions == list(range(1, RACERS - PLACES + 1))
    told = sorted(int(t.split("现在是第 ")[1].split(" 位")[0]) for t in texts if "现在是第 " in t)
    assert told == positions
    assert {m.id for m in members} == {s.member_id for s in rows}


async def test_100_sign_ups_at_once_in_turns_give_10_places_and_90_waiting(app: BotContext) -> None:
    event = await new_event(app)
    members = await add_members(app, RACERS)
    outcomes = await asyncio.gather(*(try_sign_up(app, event.id, m.id) for m in members))
    assert (outcomes.count(CONFIRMED), outcomes.count(WAITING)) == (PLACES, RACERS - PLACES)
    assert_ten_and_ninety(await signups(app, event.id), await event_now(app, event.id))


async def race(url: str, event_id: int, member_ids: list[int]) -> list[str]:
    """Each member signs up at once, from this process (used by the two-process test)."""
    bot = await open_app(url, Path("."))
    bot.now = lambda: NOW
    try:
        return await asyncio.gather(*(try_sign_up(bot, event_id, m) for m in member_ids))
    finally:
        await bot.db.close()


async def test_two_processes_on_one_sqlite_file_give_10_places_and_90_waiting(sqlite_app: BotContext) -> None:
    app = sqlite_app
    event = await new_event(app)
    ids = [m.id for m in await add_members(app, RACERS)]
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {ROOT!r})
        from tests.test_events_domain import race
        mine = {ids[:40]!r} if sys.argv[1] == "a" else {ids[40:80]!r}
        outcomes = asyncio.run(race({app.settings.database_url!r}, {event.id}, mine))
        print(outcomes.count("confirmed"), outcomes.count("waiting"))
        """
    )
    others = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, which, stdout=asyncio.subprocess.PIPE)
        for which in ("a", "b")
    ]
    here = await asyncio.gather(*(try_sign_up(app, event.id, m) for m in ids[80:]))
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in others]
    assert [p.returncode for p in others] == [0, 0]
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    confirmed = sum(c for c, _ in counts) + here.count(CONFIRMED)
    waiting = sum(w for _, w in counts) + here.count(WAITING)
    assert (confirmed, waiting) == (PLACES, RACERS - PLACES)
    assert_ten_and_ninety(await signups(app, event.id), await event_now(app, event.id))


async def test_the_same_member_signing_up_twice_has_one_sign_up_even_at_once(app: BotContext) -> None:
    event = await new_event(app, capacity=3)
    (member,) = await add_members(app, 1)
    assert await try_sign_up(app, event.id, member.id) == CONFIRMED
    assert await try_sign_up(app, event.id, member.id) == "already"
    (other,) = await add_members(app, 1, first=2)
    outcomes = await asyncio.gather(*(try_sign_up(app, event.id, other.id) for _ in range(20)))
    assert (outcomes.count(CONFIRMED), outcomes.count("already")) == (1, 19)
    rows = await signups(app, event.id)
    assert sorted(s.member_id for s in rows) == [member.id, other.id]
    assert (await event_now(app, event.id)).taken == 2


async def test_already_tells_where_the_member_stands(app: BotContext) -> None:
    event = await new_event(app, capacity=1)
    first, second = await add_members(app, 2)
    await try_sign_up(app, event.id, first.id)
    await try_sign_up(app, event.id, second.id)
    async with app.db.transaction() as tx:
        with pytest.raises(EventRefused) as again:
            await service.sign_up(app, tx, event.id, second.id, NOW)
    assert again.value.key == "already" and again.value.signup is not None
    assert (again.value.signup.status, again.value.signup.position) == (WAITING, 1)


# -- refusals ---------------------------------------------------------------------------------------
async def test_refusals_deadline_passed_full_cancelled_started_unknown(app: BotContext) -> None:
    event = await new_event(app, capacity=1, deadline=NOW + timedelta(days=1))
    a, b, c = await add_members(app, 3)
    assert await try_sign_up(app, event.id, a.id) == CONFIRMED
    assert await try_sign_up(app, event.id, b.id) == WAITING  # full: the waiting list, not a refusal
    after_deadline = NOW + timedelta(days=1)
    assert await try_sign_up(app, event.id, c.id, after_deadline) == "closed"
    assert await try_sign_up(app, event.id, c.id, STARTS) == "started"
    assert await try_sign_up(app, 99999, c.id) == "not_found"
    async with app.db.transaction() as tx:
        await service.cancel_event(app, tx, event.id, NOW)
        with pytest.raises(EventRefused) as twice:
            await service.cancel_event(app, tx, event.id, NOW)
        assert twice.value.key == "cancelled"
    assert await try_sign_up(app, event.id, c.id) == "cancelled"
    rows = await signups(app, event.id)
    assert sorted(s.member_id for s in rows) == [a.id, b.id]


async def test_an_event_that_would_break_is_not_made(app: BotContext) -> None:
    with pytest.raises(ValueError):
        await new_event(app, capacity=0)
    with pytest.raises(ValueError):
        await new_event(app, deadline=STARTS + timedelta(hours=1))
    async with app.db.transaction() as tx:
        assert await tx.events.all() == []


# -- cancelling and promotion -----------------------------------------------------------------------
async def test_a_cancel_promotes_the_first_waiting_member_exactly_once(app: BotContext) -> None:
    event = await new_event(app, capacity=2)
    m = await add_members(app, 5, identities=True)
    for one in m:
        await try_sign_up(app, event.id, one.id)
    assert await try_cancel(app, event.id, m[0].id) == CANCELLED
    assert await try_cancel(app, event.id, m[0].id) == "not_signed_up"  # twice: nothing more moves
    status = {s.member_id: s.status for s in await signups(app, event.id)}
    assert [status[x.id] for x in m] == [CANCELLED, CONFIRMED, CONFIRMED, WAITING, WAITING]
    assert (await event_now(app, event.id)).taken == 2
    rows = await outbox_rows(app)
    # The promoted member alone is told, on both identities, each in its language.
    assert sorted((k, lang) for k, lang, _ in rows) == [("console:r3", "zh_CN"), ("telegram:3", "en")]
    text = {lang: t for _, lang, t in rows}
    assert "补上了" in text["zh_CN"] and "微笑集市" in text["zh_CN"] and "12月5日 10:00" in text["zh_CN"]
    assert "it's yours" in text["en"] and "5 Dec 10:00" in text["en"]
    # Whoever waits moves up: the 5th is now first in line.
    async with app.db.transaction() as tx:
        fifth = await tx.events.signup(event.id, m[4].id)
        assert fifth is not None and await tx.events.position(fifth) == 2
    # A waiting member leaving frees no place and promotes nobody.
    assert await try_cancel(app, event.id, m[3].id) == CANCELLED
    assert (await event_now(app, event.id)).taken == 2 and len(await outbox_rows(app)) == 2


async def test_a_cancel_with_nobody_waiting_frees_the_place(app: BotContext) -> None:
    event = await new_event(app, capacity=2)
    a, b, c = await add_members(app, 3)
    await try_sign_up(app, event.id, a.id)
    assert await try_cancel(app, event.id, a.id) == CANCELLED
    assert (await event_now(app, event.id)).taken == 0
    # Signing up again after a cancel comes in at the back of the queue, with a new row.
    await try_sign_up(app, event.id, b.id)
    await try_sign_up(app, event.id, c.id)
    assert await try_sign_up(app, event.id, a.id) == WAITING
    assert len(await signups(app, event.id)) == 3


async def test_cancels_racing_promote_each_waiting_member_once_in_order(app: BotContext) -> None:
    places, queue = 5, 10
    event = await new_event(app, capacity=places)
    members = await add_members(app, places + queue)
    for one in members:  # one at a time, so the queue's order is known
        await try_sign_up(app, event.id, one.id)
    leaving = members[:places]
    # Every confirmed member cancels twice at once (a double tap), all together.
    outcomes = await asyncio.gather(*(try_cancel(app, event.id, m.id) for m in leaving + leaving))
    assert (outcomes.count(CANCELLED), outcomes.count("not_signed_up")) == (places, places)
    status = {s.member_id: s.status for s in await signups(app, event.id)}
    assert [status[m.id] for m in members[places : 2 * places]] == [CONFIRMED] * places  # the first five waiting
    assert [status[m.id] for m in members[2 * places :]] == [WAITING] * (queue - places)
    assert (await event_now(app, event.id)).taken == places


async def test_a_cancel_after_the_start_is_refused(app: BotContext) -> None:
    event = await new_event(app, capacity=1)
    (a,) = await add_members(app, 1)
    await try_sign_up(app, event.id, a.id)
    app.now = lambda: STARTS
    async with app.db.transaction() as tx:
        with pytest.raises(EventRefused) as late:
            await service.cancel_signup(app, tx, event.id, a.id, STARTS)
    assert late.value.key == "started"


# -- check-in ---------------------------------------------------------------------------------------
async def check(app: BotContext, event_id: int, code: str) -> str:
    async def turn(tx: Tx) -> str:
        try:
            return (await service.check_in(app, tx, event_id, code, NOW, by="console:staff")).member_number
        except EventRefused as e:
            return e.key

    return await app.db.run_turn(turn)


async def test_check_in_by_card_code_right_wrong_not_signed_up_waiting_twice(app: BotContext) -> None:
    event = await new_event(app, capacity=1)
    inside, waiting, stranger = await add_members(app, 3)
    await try_sign_up(app, event.id, inside.id)
    await try_sign_up(app, event.id, waiting.id)
    code = inside.card_code
    # Typed with a dash and in lower case, or scanned from the QR code: the same card.
    assert await check(app, event.id, format_card_code(code).lower()) == inside.member_number
    assert await check(app, event.id, CARD_QR_PREFIX + code) == "already_checked_in"
    assert await check(app, event.id, code) == "already_checked_in"
    assert await check(app, event.id, "ZZZZ-ZZZZ") == "bad_card"
    assert await check(app, event.id, "一二三") == "bad_card"
    assert await check(app, event.id, stranger.card_code) == "not_signed_up"
    assert await check(app, event.id, waiting.card_code) == "waiting"
    async with app.db.transaction() as tx:
        counts = await tx.events.counts(event.id)
        entries = await tx.audit.entries()
    assert (counts.confirmed, counts.waiting, counts.checked_in) == (1, 1, 1)
    assert [e.subject for e in entries if e.action == "event.checked_in"] == [inside.member_number]


async def test_a_card_checked_in_at_two_doors_at_once_counts_once(app: BotContext) -> None:
    event = await new_event(app, capacity=1)
    (inside,) = await add_members(app, 1)
    await try_sign_up(app, event.id, inside.id)
    outcomes = await asyncio.gather(*(check(app, event.id, inside.card_code) for _ in range(10)))
    assert (outcomes.count(inside.member_number), outcomes.count("already_checked_in")) == (1, 9)


# -- telling members --------------------------------------------------------------------------------
async def test_the_reminder_job_tells_confirmed_members_through_the_outbox_once_muted_or_not(app: BotContext) -> None:
    event = await new_event(app, capacity=2)
    a, b, c = await add_members(app, 3, identities=True)
    for one in (a, b, c):
        await try_sign_up(app, event.id, one.id)
    async with app.db.transaction() as tx:
        # Mute is for broadcasts; a reminder of one's own sign-up is sent all the same.
        await tx.conn.execute(update(members_table).where(members_table.c.id == b.id).values(notices_muted=True))
        job = await tx.jobs.get(service.reminder_key(event.id))
    assert job is not None and job.due_at == STARTS - service.REMINDER_BEFORE
    assert await run_due(app, runner_id="r") == 0  # not due yet
    app.now = lambda: STARTS - timedelta(hours=23)
    assert await run_due(app, runner_id="r") == 1
    assert await run_due(app, runner_id="r") == 0
    rows = await outbox_rows(app)
    assert sorted(k for k, _, _ in rows) == ["console:r1", "console:r2", "telegram:1", "telegram:2"]  # not r3
    text = {(k, lang): t for k, lang, t in rows}
    assert "活动提醒" in text[("console:r1", "zh_CN")] and "明天 10:00" in text[("console:r1", "zh_CN")]
    assert "A reminder" in text[("telegram:1", "en")] and "Tomorrow 10:00" in text[("telegram:1", "en")]


async def test_an_event_called_off_tells_everyone_signed_up_and_drops_its_reminder(app: BotContext) -> None:
    event = await new_event(app, capacity=1)
    a, b, _c = await add_members(app, 3, identities=True)
    await try_sign_up(app, event.id, a.id)
    await try_sign_up(app, event.id, b.id)
    async with app.db.transaction() as tx:
        await service.cancel_event(app, tx, event.id, NOW)
        assert await tx.jobs.get(service.reminder_key(event.id)) is None
    rows = await outbox_rows(app)
    assert sorted(k for k, _, _ in rows) == ["console:r1", "console:r2", "telegram:1", "telegram:2"]
    assert all("取消" in t or "cancelled" in t for _, _, t in rows)
    app.now = lambda: STARTS - timedelta(hours=1)
    assert await run_due(app, runner_id="r") == 0


def test_the_words_of_a_sign_up_button() -> None:
    assert service.signup_words(12, "zh_CN") == "报名 12"
    assert service.signup_words(12, "en") == "sign up 12"
    for said in ("报名 12", "报名12", "Sign Up 12", "sign up #12", "signup 12", "报名１２", " 报名 12 "):
        assert service.signup_id(said) == 12, said
    for said in ("报名", "报名 abc", "sign up", "我要报名 12", "报名 12 13"):
        assert service.signup_id(said) is None, said
    assert len(service.signup_words(999999999, "en").encode()) < 60  # inside Telegram's 64 bytes with "say|"
