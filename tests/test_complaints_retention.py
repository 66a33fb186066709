"""Retention: the scheduled job deletes a complaint closed longer ago than the period, with its thread,
history, pictures (rows and files); its review figures stay for the reports. A complaint closed more
recently, and one still open however old, are kept. The job is scheduled when the bot starts."""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select

from bot.config import Settings
from bot.engine.context import BotContext
from bot.runtime import running_bot
from bot.services import complaints as service
from bot.services.jobs import run_due
from bot.services.media import path_of, store
from storage.schema import complaint_history, complaint_messages, complaints, media, review_scores, reviews
from tests.test_claims_domain import NOW, SECRET
from tests.test_complaints_domain import draft

LONG_AGO = datetime(2025, 9, 1, tzinfo=UTC).timestamp()


def settings_in(tmp_path: Path, **complaints_table) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}",
        secret_key=SECRET,
        home=str(tmp_path),
        extra={"complaints": complaints_table} if complaints_table else {},
    )


def picture(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 255 - shade, 128)).save(out, "PNG")
    return out.getvalue()


async def picture_id(app: BotContext, shade: int) -> tuple[str, Path]:
    stored = await store(app.db, app.settings.media_path(), picture(shade), max_bytes=10**6, now=app.now())
    path = path_of(app.settings.media_path(), stored.sha256)
    os.utime(path, (LONG_AGO, LONG_AGO))  # written long ago, as a picture sent with an old complaint was
    return stored.id, path


async def make(app: BotContext, submitted: date, closed: date | None, shade: int) -> tuple[str, str, list[Path]]:
    """A complaint with a picture, a worker's message with a picture and an answer; closed on `closed`.
    Its id, its review's id and its pictures' files."""
    first, first_path = await picture_id(app, shade)
    later, later_path = await picture_id(app, shade + 1)
    async with app.db.transaction() as tx:
        complaint, _ = await service.submit(app, tx, draft(media_ids=(first,)), submitted)
        await service.add_from_worker(app, tx, complaint.id, "补充照片", (later,), today=submitted)
        await service.reply(app, tx, complaint.id, "收到", submitted + timedelta(days=3))
        if closed is not None:
            await service.close(app, tx, complaint.id, "resolved", closed)
    assert complaint.review_id is not None
    return complaint.id, complaint.review_id, [first_path, later_path]


async def count(app: BotContext, table, *where) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return (await tx.conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()


async def test_the_job_deletes_old_closed_complaints_and_keeps_their_figures(tmp_path: Path) -> None:
    async with running_bot(settings_in(tmp_path), run_jobs=False) as (app, _):
        app.now = lambda: NOW  # 2026-11-30: with 365 days, complaints closed before 2025-11-30 go
        old, old_review, old_files = await make(app, date(2025, 10, 1), date(2025, 10, 20), 10)
        young, _, young_files = await make(app, date(2026, 10, 1), date(2026, 11, 1), 20)
        still_open, _, open_files = await make(app, date(2025, 6, 1), None, 30)
        edge, _, _ = await make(app, date(2025, 11, 1), date(2025, 11, 30), 40)
        assert all(p.exists() for p in old_files + young_files + open_files)
        scores_before = await count(app, review_scores, review_scores.c.review_id == old_review)
        assert scores_before == 2

        await service.ensure_retention(app)
        assert await run_due(app, runner_id="test") >= 1

        async with app.db.transaction() as tx:
            assert await tx.complaints.get(old) is None
            for kept in (young, still_open, edge):
                assert await tx.complaints.get(kept) is not None
            assert await tx.media.owned_by("complaint", old) == []
            review = await tx.complaints.review(old_review)
            job = await tx.jobs.get(service.RETENTION)
        # Its thread and history went with it…
        assert await count(app, complaint_messages, complaint_messages.c.complaint_id == old) == 0
        assert await count(app, complaint_history, complaint_history.c.complaint_id == old) == 0
        assert await count(app, complaint_messages) == 6 and await count(app, complaints) == 3
        # …and its pictures, rows and files (the message's picture too); the others' are kept.
        assert await count(app, media) == 6
        assert not any(p.exists() for p in old_files)
        assert all(p.exists() for p in young_files + open_files)
        # The figures stay, with nothing that leads back to the text.
        assert review is not None
        assert (review.period, review.category, review.closed, review.first_answer_days) == ("2025-10", "pay", True, 3)
        assert await count(app, review_scores, review_scores.c.review_id == old_review) == scores_before
        assert await count(app, reviews) == 4
        # It runs again tomorrow.
        assert job is not None and job.status == "pending" and job.due_at == NOW + timedelta(days=1)


async def test_the_period_comes_from_the_config(tmp_path: Path) -> None:
    async with running_bot(settings_in(tmp_path, retention_days=30), run_jobs=False) as (app, _):
        app.now = lambda: NOW
        month_old, _, _ = await make(app, date(2026, 10, 1), date(2026, 10, 20), 10)
        fresh, _, _ = await make(app, date(2026, 11, 1), date(2026, 11, 15), 20)
        assert await service.purge_closed(app, NOW.date() - timedelta(days=30)) == 1
        async with app.db.transaction() as tx:
            assert await tx.complaints.get(month_old) is None
            assert await tx.complaints.get(fresh) is not None


async def test_the_retention_job_is_scheduled_when_the_bot_starts(tmp_path: Path) -> None:
    async with running_bot(settings_in(tmp_path)) as (app, _):
        async with app.db.transaction() as tx:
            job = await tx.jobs.get(service.RETENTION)
    assert job is not None and job.kind == service.RETENTION
    # Every start asks again; one job results.
    async with running_bot(settings_in(tmp_path), run_jobs=False) as (app, _):
        await service.ensure_retention(app)
        async with app.db.transaction() as tx:
            again = await tx.jobs.get(service.RETENTION)
    assert again is not None and again.id == job.id
