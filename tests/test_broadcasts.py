"""Broadcasts in the database: segments read and refused, the audience frozen once per member with
muted members counted and left out, each state change one conditional UPDATE, the notice as members
see it, and the creator's summary queued once when the last row is done."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.services import broadcasts as svc
from bot.services.broadcasts import BroadcastRefused, Segment, SegmentError, parse_segment
from storage.broadcasts import QUEUED, SENDING, SENT, Outcome
from storage.schema import broadcast_recipients, outbox
from tests.broadcast_helpers import NOW, add_members, mute

STAFF = "telegram:999"


@pytest.fixture
def app(bot):  # type: ignore[no-untyped-def]
    context, _ = bot
    context.now = lambda: NOW
    return context


def test_segments_read_and_round_trip(settings) -> None:  # type: ignore[no-untyped-def]
    profile = settings.profile
    assert parse_segment("all", profile) == Segment()
    platform = profile.platforms[0]
    seg = parse_segment(f"platform={platform}，since=2026-01-01, lang=en", profile)
    assert seg == Segment(platform=platform, joined_since=date(2026, 1, 1), lang="en")
    assert Segment.from_json(seg.to_json()) == seg
    assert parse_segment(seg.describe(), profile) == seg
    work = profile.work_kinds[0].id
    assert parse_segment(f"work={work},station=QR7", profile) == Segment(work_kind=work, station="QR7")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "broadcast.segment_empty"),
        ("   ,  ", "broadcast.segment_empty"),
        ("platform", "broadcast.segment_bad_part"),
        ("colour=red", "broadcast.segment_bad_part"),
        ("platform=不存在的平台", "broadcast.segment_bad_platform"),
        ("work=astronaut", "broadcast.segment_bad_work"),
        ("since=yesterday", "broadcast.segment_bad_date"),
        ("lang=fr", "broadcast.segment_bad_lang"),
        ("lang=en,lang=zh_CN", "broadcast.segment_twice"),
        ("platform=", "broadcast.segment_bad_part"),
    ],
)
def test_bad_segments_say_what_is_wrong(settings, text: str, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentError) as e:
        parse_segment(text, settings.profile)
    assert e.value.key == key


async def test_audience_is_frozen_once_per_member_muted_skipped(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        ids = await add_members(tx, 10, wechat_too=True)  # two identities each: still one row
        await add_members(tx, 5, start=100, platform="饿了么")
        await mute(tx, ids[:3])
        seg = Segment(platform="美团")
        assert await svc.audience(app, tx, seg) == svc.Audience(members=10, muted=3)
        b = await svc.create(app, tx, text=" 周六微笑集市 ", segment=seg, created_by=STAFF)
        assert b.state == "draft" and b.text == "周六微笑集市"
        started = await svc.start(app, tx, b.id, by=STAFF, background=False)
        assert (started.state, started.recipients, started.skipped_muted) == ("sending", 7, 3)
        rows = (await tx.conn.execute(select(broadcast_recipients))).all()
    assert len(rows) == 7 == len({r.member_id for r in rows})
    # The newest reachable identity is the one written to.
    assert all(r.user_key.startswith("wechat:") and r.status == QUEUED for r in rows)
    async with app.db.transaction() as tx:
        with pytest.raises(BroadcastRefused) as e:  # started once only
            await svc.start(app, tx, b.id, by=STAFF, background=False)
        assert e.value.reason == "wrong_state"


async def test_unreachable_identity_is_passed_over(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        await add_members(tx, 2, wechat_too=True)
        await tx.members.set_unreachable("wechat:o1")
        await tx.members.set_unreachable("wechat:o2")
        await tx.members.set_unreachable("telegram:10002")
        b = await svc.create(app, tx, text="x", segment=Segment(), created_by=STAFF)
        await svc.start(app, tx, b.id, by=STAFF, background=False)
        rows = {r.member_id: r for r in (await tx.conn.execute(select(broadcast_recipients))).all()}
        report = await svc.report(app, tx, b.id)
    assert sorted(r.user_key for r in rows.values()) == ["telegram:10001", "wechat:o2"]
    assert (report.recipients, report.unreachable, report.queued) == (2, 1, 1)


async def test_language_and_join_date_segments(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        await add_members(tx, 3, lang="en")
        await add_members(tx, 4, start=10)
        await add_members(tx, 2, start=20, joined_at=NOW - timedelta(days=1))
        assert (await svc.audience(app, tx, Segment(lang="en"))).members == 3
        assert (await svc.audience(app, tx, Segment(lang="zh_CN"))).members == 6
        since = (NOW - timedelta(days=2)).date()
        assert (await svc.audience(app, tx, Segment(joined_since=since))).members == 2


async def test_state_changes_are_conditional(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        await add_members(tx, 3)
        b = await svc.create(app, tx, text="x", segment=Segment(), created_by=STAFF)
        with pytest.raises(BroadcastRefused) as e:
            await svc.pause(app, tx, b.id)  # a draft is not being sent
        assert e.value.reason == "wrong_state" and e.value.state == "draft"
        await svc.start(app, tx, b.id, by=STAFF, background=False)
        assert (await svc.pause(app, tx, b.id)).state == "paused"
        with pytest.raises(BroadcastRefused):
            await svc.pause(app, tx, b.id)
        # Rows a sender left `sending` are due again on resume.
        claimed = await tx.broadcasts.claim(b.id, "telegram", NOW, 10, timedelta(minutes=1))
        assert claimed == []  # nothing is claimed while paused
        assert (await svc.resume(app, tx, b.id, background=False)).state == "sending"
        claimed = await tx.broadcasts.claim(b.id, "telegram", NOW, 2, timedelta(minutes=1))
        assert len(claimed) == 2
        await svc.pause(app, tx, b.id)
        await svc.resume(app, tx, b.id, background=False)
        statuses = (await tx.conn.execute(select(broadcast_recipients.c.status))).scalars().all()
        assert statuses == [QUEUED] * 3
        cancelled = await svc.cancel(app, tx, b.id)
        assert cancelled.state == "cancelled" and cancelled.version == 6
        for change in (svc.pause, svc.cancel):
            with pytest.raises(BroadcastRefused):
                await change(app, tx, b.id)
        with pytest.raises(BroadcastRefused) as e:
            await svc.resume(app, tx, b.id)
        assert e.value.say(app, "en").endswith("(it is cancelled).")
        with pytest.raises(BroadcastRefused) as e:
            await svc.report(app, tx, 12345)
        assert e.value.reason == "not_found"


async def test_pause_racing_cancel_one_wins(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        await add_members(tx, 1)
        b = await svc.create(app, tx, text="x", segment=Segment(), created_by=STAFF)
        await svc.start(app, tx, b.id, by=STAFF, background=False)

    async def attempt(change):  # type: ignore[no-untyped-def]
        async def turn(tx):  # type: ignore[no-untyped-def]
            try:
                return (await change(app, tx, b.id)).state
            except BroadcastRefused:
                return None

        return await app.db.run_turn(turn)

    results = await asyncio.gather(*(attempt(c) for c in (svc.pause, svc.cancel, svc.pause, svc.cancel)))
    async with app.db.transaction() as tx:
        final = (await svc.report(app, tx, b.id)).state
    # pause then cancel may both win (paused can be cancelled); nothing moves a cancelled one.
    assert final == "cancelled" and results.count("cancelled") == 1


async def test_scheduled_broadcast_starts_by_job(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        await add_members(tx, 2)
        with pytest.raises(BroadcastRefused):
            await svc.create(app, tx, text="x", segment=Segment(), created_by=STAFF, send_at=NOW - timedelta(1))
        b = await svc.create(app, tx, text="x", segment=Segment(), created_by=STAFF, send_at=NOW + timedelta(hours=1))
        assert b.state == "scheduled"
        job = await tx.jobs.get(svc.start_key(b.id))
        assert job is not None and job.due_at == NOW + timedelta(hours=1)
    await svc._start_job(app, job)
    async with app.db.transaction() as tx:
        report = await svc.report(app, tx, b.id)
        assert (report.state, report.recipients) == ("sending", 2)
        assert await tx.jobs.get(svc.send_key(b.id)) is not None  # handed to the bot processes


async def test_empty_or_long_text_refused(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        for text, reason in (("  ", "empty_text"), ("长" * (svc.MAX_TEXT + 1), "too_long")):
            with pytest.raises(BroadcastRefused) as e:
                await svc.create(app, tx, text=text, segment=Segment(), created_by=STAFF)
            assert e.value.reason == reason


async def test_notice_is_what_members_see(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        b = await svc.create(app, tx, text="本周六微笑集市", segment=Segment(), created_by=STAFF)
    zh = svc.notice(app, b, "zh_CN")
    assert "本周六微笑集市" in zh.text and "关闭通知" in zh.text and zh.buttons == ()
    en = svc.notice(app, b, "en", image=b"png")
    assert "/mute" in en.text and en.image == b"png" and en.lang == "en"


async def test_done_once_with_summary_to_the_creator(app) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        ids = await add_members(tx, 3)
        await mute(tx, ids[:1])
        b = await svc.create(app, tx, text="x", segment=Segment(), created_by=STAFF)
        await svc.start(app, tx, b.id, by=STAFF, background=False)
        rows = await tx.broadcasts.claim(b.id, "telegram", NOW, 10, timedelta(minutes=1))
        assert {r.status for r in rows} == {SENDING}
        assert await svc.finish_if_done(app, tx, b.id) is None
        await tx.broadcasts.record(
            b.id, [Outcome(rows[0].member_id, SENT), Outcome(rows[1].member_id, "failed", "X")], NOW
        )
        done = await svc.finish_if_done(app, tx, b.id)
        assert done is not None and (done.state, done.sent, done.failed, done.skipped_muted) == ("done", 1, 1, 1)
        assert await svc.finish_if_done(app, tx, b.id) is None
        queued = (await tx.conn.execute(select(outbox.c.user_key, outbox.c.body))).all()
    assert [q.user_key for q in queued] == [STAFF]
    assert "#" + str(b.id) in queued[0].body
