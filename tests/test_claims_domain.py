"""Claims: the transitions (allowed ones work, every other is refused), appeal once, concurrent
decisions apply exactly one, the member is told in their language, payout details never reach the
database file in clear, and amounts typed in yuan."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.engine.context import BotContext
from bot.locale import Locale
from bot.services import claims as service
from bot.services.claims import (
    ALLOWED,
    APPROVED,
    NEEDS_INFO,
    PAID,
    REJECTED,
    STATUSES,
    SUBMITTED,
    UNDER_REVIEW,
    ClaimRefused,
    parse_yuan,
    yuan,
)
from bot.services.crypto import Keyring
from storage import Database, Tx, migrate
from storage.members import Member, NewMember
from storage.schema import outbox
from storage.sessions import Session
from tests.test_postgres import postgres_database

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
SECRET = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
BANK_ACCOUNT = "6222020200112233445"
ID_NUMBER = "11010519491231002X"
HOLDER = "王小明"
TELEGRAM, WECHAT = "telegram:4242", "wechat:oRider42"


async def open_app(url: str, tmp_path: Path) -> BotContext:
    settings = Settings(database_url=url, secret_key=SECRET, home=str(tmp_path))
    db = Database(url)
    await migrate.upgrade(db)
    return BotContext(settings=settings, db=db, keyring=Keyring(SECRET), locale=Locale(), flows={})


@pytest.fixture(params=["sqlite", "postgresql"])
async def app(request, tmp_path: Path) -> AsyncIterator[BotContext]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        bot = await open_app(url, tmp_path)
        yield bot
        await bot.db.close()


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[BotContext]:
    bot = await open_app(f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}", tmp_path)
    yield bot
    await bot.db.close()


async def make_member(tx: Tx, n: int = 1) -> Member:
    member = await tx.members.create(
        NewMember(
            member_number=f"HB2026{n:06d}",
            card_code=f"CARD{n:06d}",
            phone_hash=f"hash-{n}",
            phone_enc="enc",
            name="rider",
            platform="美团",
            work_kind="delivery_rider",
            source=None,
            joined_at=NOW - timedelta(days=100),
        )
    )
    assert member is not None
    # One identity that chose English, one that never chose (the union's default, Chinese).
    await tx.members.link(f"{TELEGRAM}{n}", member.id, NOW)
    await tx.members.link(f"{WECHAT}{n}", member.id, NOW)
    await tx.sessions.save(Session(user_key=f"{TELEGRAM}{n}", lang="en"))
    return member


def draft(bot: BotContext, *media: tuple[str, str], amount: int = 80000) -> dict[str, Any]:
    return {
        "type": "injury",
        "incident_date": "2026-11-20",
        "description": "送餐途中摔倒，右手腕骨折",
        "claimed_fen": amount,
        "media": [{"id": m, "item": item} for m, item in media],
        "payout_kind": "bank",
        "payout_holder_enc": bot.keyring.encrypt(HOLDER),
        "payout_account_enc": bot.keyring.encrypt(BANK_ACCOUNT),
        "id_number_enc": bot.keyring.encrypt(ID_NUMBER),
    }


async def new_claim(bot: BotContext, n: int = 1, *media: tuple[str, str]):  # type: ignore[no-untyped-def]
    async with bot.db.transaction() as tx:
        member = await tx.members.by_number(f"HB2026{n:06d}") or await make_member(tx, n)
        for media_id, _ in media:
            await tx.media.add(media_id, "0" * 64, "image/jpeg", 10, NOW)
        return await service.submit(tx, bot, member, draft(bot, *media), now=NOW, actor=f"{TELEGRAM}{n}")


# From SUBMITTED to each state, by allowed moves: (to, keyword arguments).
STEP = {
    UNDER_REVIEW: {},
    NEEDS_INFO: {"missing": ["discharge"], "note": "请补出院小结"},
    APPROVED: {"approved_fen": 50000},
    REJECTED: {"reason_code": "not_covered", "note": "职业病不在范围内"},
    PAID: {"payment_ref": "BANK-0001"},
}
PATH = {
    SUBMITTED: [],
    UNDER_REVIEW: [UNDER_REVIEW],
    NEEDS_INFO: [UNDER_REVIEW, NEEDS_INFO],
    APPROVED: [UNDER_REVIEW, APPROVED],
    REJECTED: [UNDER_REVIEW, REJECTED],
    PAID: [UNDER_REVIEW, APPROVED, PAID],
}


async def move(bot: BotContext, number: str, to: str, actor: str = "telegram:staff1", **extra: Any):  # type: ignore[no-untyped-def]
    async with bot.db.transaction() as tx:
        return await service.move(tx, bot, number, to, actor=actor, now=NOW, **{**STEP.get(to, {}), **extra})


async def test_every_allowed_transition_works_and_every_other_is_refused(app: BotContext) -> None:
    n = 0
    for start in STATUSES:
        for to in STATUSES:
            n += 1
            claim = await new_claim(app, n)
            for step in PATH[start]:
                await move(app, claim.number, step)
            if to in ALLOWED[start]:
                moved = await move(app, claim.number, to)
                assert (moved.status, moved.version) == (to, len(PATH[start]) + 2), (start, to)
            else:
                with pytest.raises(ClaimRefused) as refused:
                    await move(app, claim.number, to)
                assert refused.value.reason == "not_allowed", (start, to)
                async with app.db.transaction() as tx:
                    after = await tx.claims.by_number(claim.number)
                assert after is not None and after.status == start and after.version == len(PATH[start]) + 1


async def test_a_claim_is_appealed_once_only(app: BotContext) -> None:
    for decision in (APPROVED, REJECTED):
        claim = await new_claim(app, 1)
        await move(app, claim.number, UNDER_REVIEW)
        await move(app, claim.number, decision)
        appealed = await move(app, claim.number, UNDER_REVIEW, actor="telegram:staff2")
        assert appealed.appealed and appealed.status == UNDER_REVIEW
        await move(app, claim.number, REJECTED if decision == APPROVED else APPROVED)
        with pytest.raises(ClaimRefused) as refused:
            await move(app, claim.number, UNDER_REVIEW)
        assert refused.value.reason == "already_appealed"


async def test_decisions_need_their_amount_reason_and_reference(app: BotContext) -> None:
    claim = await new_claim(app)
    await move(app, claim.number, UNDER_REVIEW)
    for amount in (0, -100, claim.claimed_fen + 1, 500.0, None, True):
        with pytest.raises(ClaimRefused) as refused:
            await move(app, claim.number, APPROVED, approved_fen=amount)
        assert refused.value.reason == "bad_amount", amount
    with pytest.raises(ClaimRefused) as refused:
        await move(app, claim.number, REJECTED, reason_code="because")
    assert refused.value.reason == "bad_reason"
    approved = await move(app, claim.number, APPROVED, approved_fen=claim.claimed_fen)
    assert approved.approved_fen == claim.claimed_fen
    with pytest.raises(ClaimRefused) as refused:
        await move(app, claim.number, PAID, payment_ref="  ")
    assert refused.value.reason == "no_reference"
    with pytest.raises(ClaimRefused) as refused:
        await move(app, "LP2026-999999", UNDER_REVIEW)
    assert refused.value.reason == "not_found"


async def test_a_decision_on_a_version_no_longer_there_is_refused(app: BotContext) -> None:
    claim = await new_claim(app)
    taken = await move(app, claim.number, UNDER_REVIEW)
    with pytest.raises(ClaimRefused) as refused:
        await move(app, claim.number, APPROVED, expected_version=claim.version)
    assert refused.value.reason == "moved_meanwhile"
    assert (await move(app, claim.number, APPROVED, expected_version=taken.version)).status == APPROVED


async def test_two_reviewers_taking_one_claim_the_second_is_told(app: BotContext) -> None:
    claim = await new_claim(app)
    async with app.db.transaction() as tx:
        taken = await service.take(tx, app, claim.number, actor="telegram:staff1", now=NOW)
    assert taken.assignee == "telegram:staff1"
    with pytest.raises(ClaimRefused) as refused:
        async with app.db.transaction() as tx:
            await service.take(tx, app, claim.number, actor="telegram:staff2", now=NOW)
    assert refused.value.reason == "moved_meanwhile"


async def test_200_concurrent_decisions_on_one_claim_apply_exactly_one(app: BotContext) -> None:
    claim = await move(app, (await new_claim(app)).number, UNDER_REVIEW)

    async def decide(tx: Tx, i: int) -> str:
        try:
            await service.move(
                tx, app, claim.number, APPROVED, actor=f"telegram:staff{i}", now=NOW,
                approved_fen=1000 + i, expected_version=claim.version,
            )  # fmt: skip
        except ClaimRefused as e:
            return e.reason
        return "applied"

    outcomes = await asyncio.gather(*(app.db.run_turn(lambda tx, i=i: decide(tx, i)) for i in range(200)))
    assert outcomes.count("applied") == 1
    assert outcomes.count("moved_meanwhile") == 199
    winner = outcomes.index("applied")
    async with app.db.transaction() as tx:
        after = await tx.claims.by_number(claim.number)
        history = await tx.claims.history(claim.id)
    assert after is not None and after.approved_fen == 1000 + winner and after.version == claim.version + 1
    assert [e.to_status for e in history] == [SUBMITTED, UNDER_REVIEW, APPROVED]


async def test_the_storage_refuses_a_transition_from_a_state_the_claim_has_left(app: BotContext) -> None:
    """Outside the service (a script, another tool): the statement itself holds the rule."""
    claim = await new_claim(app)
    async with app.db.transaction() as tx:
        first = await tx.claims.transition(claim.number, SUBMITTED, UNDER_REVIEW, now=NOW, actor="a")
        second = await tx.claims.transition(claim.number, SUBMITTED, UNDER_REVIEW, now=NOW, actor="b")
        stale = await tx.claims.transition(
            claim.number, UNDER_REVIEW, APPROVED, now=NOW, actor="c", expected_version=claim.version, approved_fen=1
        )
        history = await tx.claims.history(claim.id)
    assert first is not None and second is None and stale is None
    assert [(e.actor, e.to_status) for e in history] == [(f"{TELEGRAM}1", SUBMITTED), ("a", UNDER_REVIEW)]


async def outbox_messages(bot: BotContext) -> list[tuple[str, str, str]]:
    async with bot.db.transaction() as tx:
        rows = await tx.conn.execute(select(outbox.c.user_key, outbox.c.body).order_by(outbox.c.id))
        return [(r.user_key, json.loads(r.body)["lang"], json.loads(r.body)["text"]) for r in rows]


async def test_the_member_is_told_every_change_in_their_language_with_the_reason(app: BotContext) -> None:
    claim = await new_claim(app)
    en, zh = f"{TELEGRAM}1", f"{WECHAT}1"
    # Submitted from Telegram: the Telegram chat has its answer already; WeChat is told.
    assert [(k, lang) for k, lang, _ in await outbox_messages(app)] == [(zh, "zh_CN")]
    await move(app, claim.number, UNDER_REVIEW)
    await move(app, claim.number, NEEDS_INFO, missing=["discharge"], note="请补出院小结")
    async with app.db.transaction() as tx:
        member = await tx.members.by_number("HB2026000001")
        assert member is not None
        await tx.media.add("m-discharge", "1" * 64, "image/png", 10, NOW)
        back = await service.add_info(
            tx, app, claim.number, member, media=[{"id": "m-discharge", "item": "discharge"}],
            answer="补上了", now=NOW, actor=en,
        )  # fmt: skip
    assert back.status == UNDER_REVIEW and back.missing == ()
    await move(app, claim.number, REJECTED)
    await move(app, claim.number, UNDER_REVIEW)  # appeal
    await move(app, claim.number, APPROVED, approved_fen=50000)
    await move(app, claim.number, PAID)
    messages = await outbox_messages(app)
    by_key = {k: [text for key, _, text in messages if key == k] for k in (en, zh)}
    assert all(lang == ("en" if key == en else "zh_CN") for key, lang, _ in messages)
    # Telegram (English): every staff change, not its own answer to the request for information.
    assert len(by_key[en]) == 6 and len(by_key[zh]) == 8
    assert "Discharge summary" in by_key[en][1] and "请补出院小结" in by_key[en][1]
    assert "出院小结" in by_key[zh][2]
    assert "what happened is not covered" in by_key[en][2] and "职业病不在范围内" in by_key[en][2]
    assert "不在保障范围内" in by_key[zh][4]
    assert "500.00 yuan" in by_key[en][4] and "800.00 yuan" in by_key[en][4]
    assert "BANK-0001" in by_key[en][5] and "BANK-0001" in by_key[zh][7]
    assert all(claim.number in text for texts in by_key.values() for text in texts)


async def test_every_transition_is_in_the_history_with_actor_time_and_note(app: BotContext) -> None:
    claim = await new_claim(app)
    later = NOW + timedelta(hours=3)
    async with app.db.transaction() as tx:
        await service.move(tx, app, claim.number, UNDER_REVIEW, actor="telegram:staff1", now=later)
        await service.move(
            tx,
            app,
            claim.number,
            NEEDS_INFO,
            actor="telegram:staff1",
            now=later,
            note="发票看不清",
            missing=["receipts"],
        )
        history = await tx.claims.history(claim.id)
        after = await tx.claims.by_number(claim.number)
    assert [(e.from_status, e.to_status, e.actor, e.at, e.note) for e in history] == [
        (None, SUBMITTED, f"{TELEGRAM}1", NOW, None),
        (SUBMITTED, UNDER_REVIEW, "telegram:staff1", later, None),
        (UNDER_REVIEW, NEEDS_INFO, "telegram:staff1", later, "发票看不清"),
    ]
    assert after is not None and after.missing == ("receipts",) and after.info_note == "发票看不清"


async def test_submit_numbers_claims_by_year_links_files_and_marks_what_is_missing(app: BotContext) -> None:
    complete = await new_claim(app, 1, ("m1", "diagnosis"), ("m2", "receipts"))
    partial = await new_claim(app, 1, ("m3", "receipts"), ("m4", "other"))
    assert (complete.number, partial.number) == ("LP2026-000001", "LP2026-000002")
    assert (complete.incomplete, complete.missing) == (False, ())
    assert (partial.incomplete, partial.missing) == (True, ("diagnosis",))
    async with app.db.transaction() as tx:
        docs = await tx.claims.documents(partial.id)
        owned = await tx.media.owned_by("claim", partial.number)
        mine = await tx.claims.for_member(partial.member_id)
        queue = await tx.claims.queue([SUBMITTED], 0, 10)
        count = await tx.claims.count([SUBMITTED, UNDER_REVIEW])
        month = await tx.claims.all_in_month(2026, 11)
        december = await tx.claims.all_in_month(2026, 12)
    assert [(d.media_id, d.item) for d in docs] == [("m3", "receipts"), ("m4", "other")]
    assert {m.id for m in owned} == {"m3", "m4"}
    assert [c.number for c in mine] == [partial.number, complete.number]
    assert [c.number for c in queue] == [complete.number, partial.number] and count == 2
    assert len(month) == 2 and december == []
    assert partial.incident_date == date(2026, 11, 20) and isinstance(partial.claimed_fen, int)


async def test_an_amount_over_the_cover_limit_is_refused_at_submit(app: BotContext) -> None:
    with pytest.raises(ClaimRefused) as refused:
        async with app.db.transaction() as tx:
            member = await make_member(tx)
            await service.submit(tx, app, member, draft(app, amount=1_000_001), now=NOW, actor="x")
    assert refused.value.reason == "bad_amount"


async def test_bank_account_and_id_number_are_not_in_the_database_file(sqlite_app: BotContext, tmp_path: Path) -> None:
    claim = await new_claim(sqlite_app, 1, ("m1", "diagnosis"))
    async with sqlite_app.db.transaction() as tx:
        stored = await tx.claims.by_number(claim.number)
    assert stored is not None and sqlite_app.keyring.decrypt(stored.payout_account_enc) == BANK_ACCOUNT
    files = [tmp_path / name for name in ("gigunion.db", "gigunion.db-wal") if (tmp_path / name).exists()]
    assert any(p.name.endswith("-wal") for p in files)  # still open: the claim is in the log, not only the file
    raw = b"".join(p.read_bytes() for p in files)
    assert claim.number.encode() in raw  # the search does find what is there
    for secret in (BANK_ACCOUNT, ID_NUMBER, ID_NUMBER[-8:], BANK_ACCOUNT[-10:], HOLDER):
        for encoding in ("utf-8", "utf-16-le"):
            assert secret.encode(encoding) not in raw, secret


@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("123", 12300),
        ("123.4", 12340),
        ("123.45", 12345),
        ("0.01", 1),
        ("１２３", 12300),
        ("１２３．５", 12350),
        ("123元", 12300),
        (" 88 元 ", 8800),
        ("¥99.9", 9990),
        ("￥99.9", 9990),
        ("200块", 20000),
        ("0", None),
        ("0.00", None),
        ("-5", None),
        ("1.234", None),
        ("12.", None),
        (".5", None),
        ("1e3", None),
        ("一百", None),
        ("abc", None),
        ("", None),
        ("1,000", None),
        ("9999999999", None),
    ],
)
def test_parse_yuan(typed: str, fen: int | None) -> None:
    assert parse_yuan(typed) == fen


def test_yuan() -> None:
    assert [yuan(f) for f in (12345, 5, 100, 0, 1_000_000)] == ["123.45", "0.05", "1.00", "0.00", "10000.00"]
