"""Complaints: every move is one conditional UPDATE (two staff at once: one wins, the other is refused),
receipt codes are kept as scrypt with a pepper only the secret key opens (and still work after a key
rotation), ids are random and rows kept in no time order, the rows hold nothing of the sender and
days rather than times, and the wrong-code guard limits each caller and everyone together."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.engine.context import BotContext
from bot.runtime import running_bot
from bot.services import complaints as service
from bot.services import receipts
from bot.services.complaints import ComplaintRefused, Draft
from bot.services.crypto import Keyring
from bot.services.receipts import ReceiptGuard
from bot.services.secret_key import rotate
from tests.chat import Chat, join
from tests.test_claims_domain import NOW, open_app
from tests.test_postgres import postgres_database

TODAY = date(2026, 11, 30)
COMPANY = "美团"
TEXT = "站长每单扣我两块钱，说是超时罚款，可我没超时。"


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


def draft(**changes) -> Draft:  # type: ignore[no-untyped-def]
    base = Draft(
        target_kind="company",
        target=COMPANY,
        category="pay",
        ratings={"pay": 1, "labour_relations": 2},
        description=TEXT,
    )
    return replace(base, **changes)


async def submit(app: BotContext, d: Draft | None = None, today: date = TODAY) -> tuple[service.Complaint, str]:
    async with app.db.transaction() as tx:
        return await service.submit(app, tx, d or draft(), today)


# -- receipt codes -------------------------------------------------------------------------------------


def test_receipt_codes_are_16_digits_shown_in_fours_and_read_forgivingly() -> None:
    codes = {service.new_receipt_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 16 and c.isdigit() and c[0] != "0" for c in codes)
    assert service.format_receipt("1234567890123456") == "1234 5678 9012 3456"
    full_width = "１２３４５６７８９０１２３４５６"
    for typed in ("1234 5678 9012 3456", "1234-5678-9012-3456", full_width, " 1234567890123456\n"):
        assert service.read_receipt(typed) == "1234567890123456"
    for wrong in ("", "1234", "1234 5678 9012 345", "1234 5678 9012 34567", "abcd efgh ijkl mnop", "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦"):
        assert service.read_receipt(wrong) is None


async def test_submit_then_follow_up_with_the_code(app: BotContext) -> None:
    complaint, code = await submit(app)
    assert complaint.status == "new" and complaint.version == 1 and complaint.category == "pay"
    assert complaint.target_kind == "company" and complaint.target == COMPANY
    async with app.db.transaction() as tx:
        found = await service.by_receipt(app, tx, service.format_receipt(code))
        assert found is not None and found.id == complaint.id
        assert service.description(app, found) == TEXT
        wrong = str((int(code) + 1) % 10**16).zfill(16)
        assert await service.by_receipt(app, tx, wrong) is None
        assert await service.by_receipt(app, tx, "not a code") is None
        review = await tx.complaints.review(complaint.review_id)
        assert review is not None and review.period == "2026-11" and review.category == "pay"
    async with app.db.transaction() as tx:
        await service.add_from_worker(app, tx, complaint.id, "补充：12月1日又扣了。", today=TODAY)
        await service.reply(app, tx, complaint.id, "收到，我们已联系站点核实。", TODAY + timedelta(days=2))
    async with app.db.transaction() as tx:
        thread = await service.thread(app, tx, complaint.id)
        assert [(m.author, m.text) for m in thread] == [
            ("worker", "补充：12月1日又扣了。"),
            ("union", "收到，我们已联系站点核实。"),
        ]
        review = await tx.complaints.review(complaint.review_id)
        assert review is not None and review.first_answer_days == 2


async def test_the_receipt_hash_is_scrypt_keyed_by_a_pepper_only_the_key_opens(app: BotContext) -> None:
    _, code = await submit(app)
    async with app.db.transaction() as tx:
        stored_pepper = await tx.complaints.secret(receipts.PEPPER_NAME)
        (row,) = (await tx.conn.execute(text("SELECT receipt_hash FROM complaints"))).all()
    assert stored_pepper is not None
    stored = row[0]
    pepper = await _pepper(app)
    assert len(pepper) == 32
    # The pepper is not kept in clear: the stored value is the key's ciphertext, not the bytes.
    assert pepper.hex() not in stored_pepper and pepper not in stored_pepper.encode()
    assert stored == hashlib.scrypt(code.encode(), salt=pepper, n=2**14, r=8, p=1, dklen=32).hex()
    # Without the pepper (no salt, an empty one, a plain hash) the code cannot be checked.
    for guess in (
        hashlib.scrypt(code.encode(), salt=b"", n=2**14, r=8, p=1, dklen=32).hex(),
        hashlib.sha256(code.encode()).hexdigest(),
        receipts.receipt_hash(code, b"\0" * 32),
    ):
        assert guess != stored
    # Another key cannot open the pepper.
    with pytest.raises(ValueError):
        Keyring("another-secret-key-0123456789abcdefghijklmnopqrstuv").decrypt(stored_pepper)
    # The pepper is made once and kept: a second complaint uses the same one.
    _, code2 = await submit(app)
    async with app.db.transaction() as tx:
        assert await tx.complaints.secret(receipts.PEPPER_NAME) == stored_pepper
        assert (await service.by_receipt(app, tx, code2)) is not None


async def _pepper(app: BotContext) -> bytes:
    async with app.db.transaction() as tx:
        return await receipts.pepper(app, tx)


async def test_a_receipt_code_works_after_a_key_rotation(tmp_path: Path) -> None:
    keyless = Settings(home=str(tmp_path / "data"))
    async with running_bot(keyless, run_jobs=False) as (app, dispatcher):
        await join(Chat(dispatcher, user="u1"), phone="13800138000")  # a database with something under the key
        async with app.db.transaction() as tx:
            complaint, code = await service.submit(app, tx, draft(), TODAY)
            await service.reply(app, tx, complaint.id, "已转法律援助组。", TODAY)
        old = app.keyring
        await rotate(keyless, app.db, old, app.now())
    async with running_bot(keyless, run_jobs=False) as (app, _):
        assert app.keyring.fingerprint() != old.fingerprint()
        async with app.db.transaction() as tx:
            found = await service.by_receipt(app, tx, code)
            assert found is not None and found.id == complaint.id
            assert service.description(app, found) == TEXT
            assert [m.text for m in await service.thread(app, tx, complaint.id)] == ["已转法律援助组。"]
            stored = await tx.complaints.secret(receipts.PEPPER_NAME)
        with pytest.raises(ValueError):
            old.decrypt(stored)  # re-encrypted under the new key


# -- one conditional UPDATE per move ---------------------------------------------------------------------


async def test_two_staff_at_once_one_wins_the_other_is_refused(app: BotContext) -> None:
    complaint, _ = await submit(app)
    seen = complaint.version  # both opened it at this version

    async def act(fn, *args):  # type: ignore[no-untyped-def]
        async with app.db.transaction() as tx:
            return await fn(app, tx, complaint.id, *args, TODAY, expected_version=seen)

    results = await asyncio.gather(
        act(service.route, "legal"), act(service.route, "union_office"), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, service.Complaint)]
    refused = [r for r in results if isinstance(r, ComplaintRefused)]
    assert len(won) == 1 and len(refused) == 1, results
    assert refused[0].reason == "moved_meanwhile" and refused[0].key == "complaints.refused_moved_meanwhile"
    async with app.db.transaction() as tx:
        now = await tx.complaints.get(complaint.id)
        history = await tx.complaints.history(complaint.id)
    assert now is not None and now.team == won[0].team and now.version == seen + 1
    assert [(h.from_status, h.to_status) for h in history] == [(None, "new"), ("new", "routed")]


async def test_a_move_decided_on_a_stale_read_changes_nothing(app: BotContext, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What the UPDATE itself holds: staffer A read the complaint (triaged, category pay); B corrects the
    category meanwhile; A's correction, made on what A read, must not overwrite B's. A status-only
    condition would let it through (the status is still triaged); the version does not."""
    complaint, _ = await submit(app)
    async with app.db.transaction() as tx:
        await service.triage(app, tx, complaint.id, "pay", TODAY)
        stale = await tx.complaints.get(complaint.id)
        await service.triage(app, tx, complaint.id, "safety", TODAY)  # B
    assert stale is not None

    async def stale_read(self, complaint_id):  # type: ignore[no-untyped-def]
        return stale

    monkeypatch.setattr(type(tx.complaints), "get", stale_read)
    async with app.db.transaction() as tx:
        with pytest.raises(ComplaintRefused) as refused:
            await service.triage(app, tx, complaint.id, "hours", TODAY)  # A, no version given: the one read
    assert refused.value.reason == "moved_meanwhile"
    monkeypatch.undo()
    async with app.db.transaction() as tx:
        after = await tx.complaints.get(complaint.id)
        review = await tx.complaints.review(complaint.review_id)
    assert after is not None and after.category == "safety" and after.version == 3
    assert review is not None and review.category == "safety"


async def test_moves_follow_the_states_and_config(app: BotContext) -> None:
    complaint, _ = await submit(app)
    async with app.db.transaction() as tx:
        for fn, arg, reason in (
            (service.triage, "nonsense", "unknown_category"),
            (service.route, "nonsense", "unknown_team"),
            (service.close, "nonsense", "unknown_outcome"),
            (service.reply, "   ", "empty"),
            (service.reply, "字" * 1001, "too_long"),
        ):
            with pytest.raises(ComplaintRefused) as refused:
                await fn(app, tx, complaint.id, arg, TODAY)
            assert refused.value.reason == reason
        with pytest.raises(ComplaintRefused) as refused:
            await service.route(app, tx, "nosuchid", "legal", TODAY)
        assert refused.value.reason == "not_found"
        routed = await service.route(app, tx, complaint.id, "legal", TODAY)
        with pytest.raises(ComplaintRefused) as refused:  # triage is for what is not yet routed
            await service.triage(app, tx, complaint.id, "hours", TODAY)
        assert refused.value.reason == "not_allowed"
        answered = await service.reply(app, tx, complaint.id, "我们在处理。", TODAY)
        # The worker answers: back to the team, so staff see there is something new.
        await service.add_from_worker(app, tx, complaint.id, "谢谢，还有一件事。", today=TODAY)
        back = await tx.complaints.get(complaint.id)
        assert routed.status == "routed" and answered.status == "answered"
        assert back is not None and back.status == "routed" and back.team == "legal"
        closed = await service.close(app, tx, complaint.id, "resolved", TODAY + timedelta(days=3))
        assert closed.status == "closed" and closed.outcome == "resolved" and closed.closed_on == TODAY + timedelta(3)
        review = await tx.complaints.review(complaint.review_id)
        assert review is not None and review.closed and review.first_answer_days == 0
        for fn, arg in ((service.reply, "再说一句"), (service.close, "resolved"), (service.route, "legal")):
            with pytest.raises(ComplaintRefused) as refused:
                await fn(app, tx, complaint.id, arg, TODAY)
            assert refused.value.reason == "closed"
        with pytest.raises(ComplaintRefused) as refused:
            await service.add_from_worker(app, tx, complaint.id, "还在吗？", today=TODAY)
        assert refused.value.reason == "closed"


async def test_a_draft_is_checked_before_anything_is_kept(app: BotContext) -> None:
    for bad, reason in (
        (draft(target="不存在的公司"), "unknown_target"),
        (draft(target_kind="boss"), "unknown_target"),
        (draft(category="gossip"), "unknown_category"),
        (draft(ratings={"pay": 6}), "bad_rating"),
        (draft(ratings={"mood": 3}), "bad_rating"),
        (draft(description="  "), "empty"),
        (draft(description="字" * 1001), "too_long"),
    ):
        with pytest.raises(ComplaintRefused) as refused:
            await submit(app, bad)
        assert refused.value.reason == reason
    union, _ = await submit(app, draft(target_kind="union", target="anything", category="union_service"))
    assert union.target is None
    async with app.db.transaction() as tx:
        assert list((await tx.complaints.counts()).items()) == [("new", 1)]


async def test_complaint_settings_come_from_the_config_with_defaults(app: BotContext) -> None:
    config = service.complaint_settings(app)
    assert [i.id for i in config.indicators] == [
        "labour_relations",
        "pay",
        "safety",
        "democratic_management",
        "union_service",
    ]
    assert config.indicators[0].label("zh_CN") == "劳动关系"
    assert [t.id for t in config.teams] == ["legal", "company_liaison", "union_office"]
    assert (config.max_description, config.retention_days) == (1000, 365)
    custom = {
        "retention_days": 30,
        "max_description": 200,
        "teams": [{"id": "hotline", "label": {"zh_CN": "热线组", "en": "Hotline"}}],
        "indicators": [{"id": "canteen", "label": "食堂"}],
        "outcomes": ["done"],
    }
    app.settings = replace(app.settings, extra={"complaints": custom})
    config = service.complaint_settings(app)
    assert [t.id for t in config.teams] == ["hotline"] and config.teams[0].label("en") == "Hotline"
    assert config.indicators[0].label("zh_CN") == "食堂" and config.outcomes == ("done",)
    assert (config.max_description, config.retention_days) == (200, 30)
    with pytest.raises(ComplaintRefused):
        await submit(app, draft(description="字" * 201))


# -- nothing of the sender, no order, days only ------------------------------------------------------------


async def test_ids_are_random_and_rows_are_kept_in_no_time_order(app: BotContext) -> None:
    made = [(await submit(app))[0].id for _ in range(30)]
    assert len(set(made)) == 30
    assert all(len(i) == 12 for i in made)
    # A counter or a time-based id would come out sorted (30 random ones: 1 in 30! chance).
    assert sorted(made) != made
    if app.settings.sqlite_path() is None:
        return  # PostgreSQL's heap keeps insertion order; the file a copy is taken of is SQLite's
    # Not by a hidden rowid either: the file keeps the rows in an order unrelated to submission.
    async with app.db.transaction() as tx:
        stored = [r[0] for r in (await tx.conn.execute(text("SELECT id FROM complaints"))).all()]
    assert sorted(stored) == sorted(made) and stored != made


@pytest.mark.parametrize("table", ["complaints", "complaint_messages", "complaint_history", "reviews", "review_scores"])
async def test_sqlite_keeps_no_rowid_that_would_count_submissions(tmp_path: Path, table: str) -> None:
    app = await open_app(f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}", tmp_path)
    await app.db.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "gigunion.db")) as db:
        with pytest.raises(sqlite3.OperationalError, match="rowid"):
            db.execute(f"SELECT rowid FROM {table}")


async def test_the_rows_hold_no_user_key_member_phone_or_name_and_days_only(tmp_path: Path) -> None:
    """A member submits a complaint in a chat; then every value of every complaint row (and its thread,
    history, review and picture rows) is looked at, raw: none of the sender's identifiers is there,
    and every date is a day."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}",
        secret_key="test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        home=str(tmp_path),
    )
    phone, user = "13800138000", "telegram:777001"
    async with running_bot(settings, run_jobs=False) as (app, dispatcher):
        await join(Chat(dispatcher, user=user), phone=phone)
        async with app.db.transaction() as tx:
            (member,) = await tx.members.all()
            complaint, code = await service.submit(app, tx, draft(), TODAY)
            await service.add_from_worker(app, tx, complaint.id, "补充一句", today=TODAY)
            await service.reply(app, tx, complaint.id, "收到", TODAY)
    # (The member's id, a small number, is looked for as a column: no row may have one.)
    identifiers = {
        user,
        user.partition(":")[2],
        phone,
        member.name,
        member.member_number,
        member.card_code,
        member.phone_enc,
        app.keyring.lookup_hash(phone),
        code,
        TEXT,
    }
    with contextlib.closing(sqlite3.connect(tmp_path / "gigunion.db")) as db:
        db.row_factory = sqlite3.Row
        for table in ("complaints", "complaint_messages", "complaint_history", "reviews", "review_scores"):
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            assert rows, table
            columns = set(rows[0].keys())
            assert not columns & {"user_key", "member_id", "phone", "name", "message_id", "chat_id", "actor"}, table
            for row in rows:
                for column in columns:
                    value = row[column]
                    for ident in identifiers:
                        assert ident not in str(value), (table, column)
                    if column in ("submitted_on", "updated_on", "closed_on", "on_day") and value is not None:
                        assert date.fromisoformat(value) == TODAY, (table, column, value)  # a day, no time


async def test_pictures_keep_only_their_day(app: BotContext) -> None:
    sent_at = datetime(2026, 11, 30, 9, 41, 17, tzinfo=UTC)
    async with app.db.transaction() as tx:
        await tx.media.add("pic-1", "ab" * 32, "image/jpeg", 1000, sent_at)
    complaint, _ = await submit(app, draft(media_ids=("pic-1",)))
    async with app.db.transaction() as tx:
        (record,) = await tx.media.owned_by("complaint", complaint.id)
    assert record.id == "pic-1"
    assert (record.created_at.hour, record.created_at.minute, record.created_at.second) == (0, 0, 0)
    assert record.created_at.date() == TODAY


async def test_encrypted_texts_tell_the_day_only(app: BotContext) -> None:
    """A Fernet token carries the second it was made, in clear (bytes 1–8, read without the key): a
    complaint's text and thread must say the day only."""
    import base64

    from sqlalchemy import select

    from storage.schema import complaint_messages, complaints

    complaint, _ = await submit(app)
    async with app.db.transaction() as tx:
        await service.add_from_worker(app, tx, complaint.id, "补充一句", today=TODAY)
        await service.reply(app, tx, complaint.id, "收到", TODAY)
        tokens = [*(await tx.conn.execute(select(complaints.c.description_enc))).scalars()]
        tokens += [*(await tx.conn.execute(select(complaint_messages.c.body_enc))).scalars()]
    midnight = int(datetime.combine(TODAY, datetime.min.time(), UTC).timestamp())
    assert len(tokens) == 3
    assert {int.from_bytes(base64.urlsafe_b64decode(t)[1:9], "big") for t in tokens} == {midnight}


# -- the wrong-code guard -----------------------------------------------------------------------------------


def test_the_guard_allows_five_wrong_codes_per_caller_per_quarter_hour() -> None:
    guard = ReceiptGuard()
    t0 = NOW
    for i in range(5):
        assert guard.allowed("a", t0 + timedelta(seconds=i))
        guard.wrong("a", t0 + timedelta(seconds=i))
    assert not guard.allowed("a", t0 + timedelta(minutes=1))
    assert guard.remaining("a", t0 + timedelta(minutes=1)) == 0
    assert guard.allowed("b", t0 + timedelta(minutes=1))  # another caller is not held back
    assert guard.remaining("b", t0 + timedelta(minutes=1)) == 5
    assert not guard.allowed("a", t0 + timedelta(minutes=14, seconds=59))
    # Fifteen minutes after the first mistake, one more try (and only one).
    assert guard.allowed("a", t0 + timedelta(minutes=15, seconds=0.5))
    guard.wrong("a", t0 + timedelta(minutes=15, seconds=0.5))
    assert not guard.allowed("a", t0 + timedelta(minutes=15, seconds=0.7))


def test_the_guard_stops_everyone_after_a_hundred_wrong_codes() -> None:
    guard = ReceiptGuard()
    for i in range(100):
        tag = f"caller-{i}"  # a crowd, each caller within its own limit
        assert guard.allowed(tag, NOW)
        guard.wrong(tag, NOW)
    assert not guard.allowed("someone-new", NOW + timedelta(minutes=1))
    assert guard.allowed("someone-new", NOW + timedelta(minutes=15, seconds=1))


def test_the_guard_forgets_old_callers() -> None:
    guard = ReceiptGuard(overall=10)
    for i in range(200):
        at = NOW + timedelta(minutes=16 * i)
        guard.wrong(f"c{i}", at)
    assert len(guard._tags) <= 2 * 10 + 1


def test_one_guard_per_bot() -> None:
    holder = type("App", (), {})()
    assert receipts.guard_of(holder) is receipts.guard_of(holder)  # type: ignore[arg-type]
