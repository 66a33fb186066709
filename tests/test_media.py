"""The media store through the console channel and the real dispatcher, on a real SQLite file (and on
PostgreSQL where a server runs on 127.0.0.1): files checked by their bytes, kept once under their
hash, linked by the turn, refused politely, stripped of metadata on request, and purged when unlinked.

The helpers here (sample files, a test-only flow) are used by the Telegram and WeChat media tests too.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.flow import Flow, Turn
from bot.engine.messages import Outgoing, Refusal
from bot.handlers.console import parse_line
from bot.locale import Locale
from bot.runtime import running_bot
from bot.services.media import (
    TEMP_DIR,
    TOMBSTONE,
    MediaRefused,
    check,
    expect_file,
    path_of,
    purge_unlinked,
    received,
    size_text,
    store,
)
from storage.schema import media
from tests.chat import Chat
from tests.test_postgres import postgres_database

L = Locale()
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def t(key: str, lang: str = "zh_CN", **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.text(lang, key, **ctx)


# -- sample files -----------------------------------------------------------------------------------------
def _noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def jpeg_with_gps(width: int = 64, height: int = 48, seed: int = 1) -> bytes:
    """A phone photo: EXIF with the camera, where it was taken, and a sideways orientation."""
    exif = Image.Exif()
    exif[0x0110] = "Rider Phone 9"
    exif[ORIENTATION] = 6  # taken turned: shown rotated 90°
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (30.0, 15.0, 4.2), 3: "E", 4: (120.0, 10.0, 1.5)})
    out = io.BytesIO()
    _noise(width, height, seed).save(out, "JPEG", exif=exif.tobytes(), comment=b"shot at Xihu station")
    return out.getvalue()


def png(width: int = 40, height: int = 30, seed: int = 2) -> bytes:
    out = io.BytesIO()
    _noise(width, height, seed).save(out, "PNG")
    return out.getvalue()


def pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


FAKE_JPEG = "这不是照片，只是改了名字的文字文件。\n".encode()


def truncated_png() -> bytes:
    whole = png(seed=3)
    return whole[: len(whole) // 2]


# -- a test-only flow that takes files ------------------------------------------------------------------
def media_flow(name: str = "mediatest", *, strip: bool = False, words: tuple[str, ...] = ("传文件",)) -> Flow:
    """One step that takes photos and documents, links each to the user's record and asks for more."""
    flow = Flow(name, commands=(name,), words=words)

    @flow.start
    async def start(turn: Turn, payload: str) -> None:
        turn.goto("file")

    @flow.ask("file")
    async def ask(turn: Turn) -> None:
        expect_file(turn, strip_metadata=strip)
        turn.say("media.send_file")

    @flow.on("file")
    async def on_file(turn: Turn) -> None:
        stored = received(turn)
        if stored is None:
            return
        assert await turn.tx.media.link(stored.id, "test", turn.user_key)
        turn.retry("media.received")

    return flow


def with_media_flows(app: BotContext) -> None:
    for flow in (media_flow(), media_flow("mediastrip", strip=True, words=("传照片",))):
        app.flows[flow.name] = flow


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def media_rows(app: BotContext) -> list:  # type: ignore[type-arg]
    async with app.db.transaction() as tx:
        return list(await tx.conn.execute(select(media).order_by(media.c.created_at)))


async def session_step(app: BotContext, user_key: str) -> str | None:
    async with app.db.transaction() as tx:
        session = await tx.sessions.get(user_key)
    return session.step if session else None


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path: Path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """This test's database: a SQLite file, or a new database on the PostgreSQL server on 127.0.0.1."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def media_bot(db_url: str, tmp_path: Path) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    settings = Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        media_dir=str(tmp_path / "media"),
    )
    async with running_bot(settings) as (app, dispatcher):
        with_media_flows(app)
        yield app, dispatcher


def console_line(dispatcher: Dispatcher, user: str = "alice") -> Callable[[str], Awaitable[Outgoing]]:
    """Typing lines in the terminal channel, parsed as `gigunion console` parses them."""
    chat = Chat(dispatcher, user)

    async def line(text: str) -> Outgoing:
        return await chat.send(parse_line(text, user, None))

    return line


# -- the content check ----------------------------------------------------------------------------------
def test_files_are_judged_by_their_bytes_not_their_names() -> None:
    assert check(jpeg_with_gps(), 10_000_000) == "image/jpeg"
    assert check(png(), 10_000_000) == "image/png"
    assert check(pdf(), 10_000_000) == "application/pdf"
    whole_jpeg = jpeg_with_gps()
    cases = {
        Refusal.WRONG_TYPE: [FAKE_JPEG, b"GIF89a" + b"\0" * 40, b""],
        Refusal.TRUNCATED: [
            truncated_png(),
            png()[:-1],  # only the last checksum byte missing
            whole_jpeg[: len(whole_jpeg) * 2 // 3],
            pdf()[:-12],
            b"\xff\xd8\xff" + FAKE_JPEG,  # a JPEG's first bytes, then text
        ],
        Refusal.TOO_BIG: [png(200, 200)],
    }
    for reason, samples in cases.items():
        for sample in samples:
            with pytest.raises(MediaRefused) as refused:
                check(sample, 20_000)
            assert refused.value.reason is reason, (reason, sample[:12])


def test_a_tiny_file_holding_a_huge_picture_is_too_big() -> None:
    out = io.BytesIO()
    Image.new("1", (10_000, 8_000)).save(out, "PNG")  # 80 megapixels in a few kilobytes
    assert len(out.getvalue()) < 100_000
    with pytest.raises(MediaRefused) as refused:
        check(out.getvalue(), 10_000_000)
    assert refused.value.reason is Refusal.TOO_BIG


def test_every_refusal_has_a_polite_answer_in_every_language() -> None:
    for lang in L.languages:
        keys = L.keys(lang)
        assert {f"media.refused_{r.value}" for r in Refusal} <= keys
        assert "10 MB" in L.text(lang, "media.refused_too_big", limit=size_text(10 * 1024 * 1024))


# -- over the console, end to end -------------------------------------------------------------------------
async def test_good_files_are_stored_once_by_content_and_linked(media_bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = media_bot
    folder = tmp_path / "media"
    samples = {"photo.jpg": jpeg_with_gps(), "scan.png": png(), "invoice.pdf": pdf()}
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
    line = console_line(dispatcher)

    first = await line("/mediatest")
    assert t("media.send_file") in first.text
    for command in ("/photo photo.jpg", "/photo scan.png", "/file invoice.pdf", "/photo photo.jpg"):
        name = command.split()[1]
        out = await line(command.replace(name, str(tmp_path / name)))
        assert t("media.received") in out.text, out.text
    assert await session_step(app, "console:alice") == "file"

    rows = await media_rows(app)
    assert len(rows) == 4
    assert {(r.owner_kind, r.owner_id) for r in rows} == {("test", "console:alice")}
    assert sorted(r.mime for r in rows) == ["application/pdf", "image/jpeg", "image/jpeg", "image/png"]
    assert len({r.id for r in rows}) == 4 and len({r.sha256 for r in rows}) == 3
    # The same photo twice is one file; each file is the bytes sent, untouched, under its hash.
    stored = files_under(folder)
    assert len(stored) == 3
    assert {p.read_bytes() for p in stored} == set(samples.values())
    for row in rows:
        assert path_of(folder, row.sha256).stat().st_size == row.size
    assert not files_under(folder / TEMP_DIR)


@pytest.mark.parametrize(
    ("name", "data", "answer"),
    [
        ("fake.jpg", FAKE_JPEG, "media.refused_wrong_type"),
        ("big.png", png(300, 300), "media.refused_too_big"),
        ("cut.png", truncated_png(), "media.refused_truncated"),
        ("missing.jpg", None, "media.refused_download_failed"),
    ],
)
async def test_bad_files_get_a_polite_answer_and_leave_nothing(make_settings, tmp_path, name, data, answer) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "media"
    settings = make_settings(media_dir=str(folder), media_max_bytes=100_000)
    if data is not None:
        (tmp_path / name).write_bytes(data)
    async with running_bot(settings) as (app, dispatcher):
        with_media_flows(app)
        line = console_line(dispatcher)
        await line("/mediatest")
        out = await line(f"/photo {tmp_path / name}")
        assert t(answer, limit="98 KB") in out.text
        assert t("media.send_file") in out.text  # asked again: the step is where it was
        assert await session_step(app, "console:alice") == "file"
        assert await media_rows(app) == []
        assert files_under(folder) == []
        # And the next, good file is taken as usual.
        (tmp_path / "good.png").write_bytes(png())
        assert t("media.received") in (await line(f"/photo {tmp_path / 'good.png'}")).text


async def test_text_at_a_file_step_asks_for_a_file(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    with_media_flows(app)
    chat = Chat(dispatcher)
    await chat.command("/mediatest")
    out = await chat.say("我没有照片")
    assert out.text.count(t("media.send_file")) == 2
    assert await session_step(app, "console:alice") == "file"


async def test_a_photo_where_no_step_takes_files_is_not_fetched(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    (tmp_path / "photo.jpg").write_bytes(jpeg_with_gps())
    line = console_line(dispatcher)
    await line("/menu")
    await line(f"/photo {tmp_path / 'photo.jpg'}")
    assert await media_rows(app) == []
    assert files_under(app.settings.media_path()) == []


async def test_gps_and_exif_are_stripped_on_request(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    with_media_flows(app)
    original = jpeg_with_gps(64, 48)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the sample does carry GPS
    (tmp_path / "photo.jpg").write_bytes(original)
    line = console_line(dispatcher)
    await line("传照片")
    assert t("media.received") in (await line(f"/photo {tmp_path / 'photo.jpg'}")).text

    [row] = await media_rows(app)
    kept = path_of(app.settings.media_path(), row.sha256).read_bytes()
    assert kept != original and row.size == len(kept) and row.mime == "image/jpeg"
    with Image.open(io.BytesIO(kept)) as img:
        exif = img.getexif()
        assert not exif.get_ifd(GPS_IFD) and GPS_IFD not in exif and not dict(exif)
        assert "comment" not in img.info and "exif" not in img.info
        assert img.size == (48, 64)  # turned upright, since the orientation tag went with the EXIF
    for needle in (b"Rider Phone", b"Xihu", b"Exif\x00\x00"):
        assert needle not in kept

    # Without the request the photo is kept exactly as sent.
    await line("/mediatest")
    await line(f"/photo {tmp_path / 'photo.jpg'}")
    plain = [r for r in await media_rows(app) if r.id != row.id]
    assert path_of(app.settings.media_path(), plain[0].sha256).read_bytes() == original


async def test_a_file_is_linked_to_one_owner_only(media_bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = media_bot
    now = datetime.now(UTC)
    stored = await store(app.db, tmp_path / "media", png(), max_bytes=10**6, now=now)
    async with app.db.transaction() as tx:
        assert await tx.media.link(stored.id, "claim", "LP2026-000123")
        assert not await tx.media.link(stored.id, "complaint", "c-1")
        assert not await tx.media.link("no-such-id", "claim", "LP2026-000123")
        [record] = await tx.media.owned_by("claim", "LP2026-000123")
    assert (record.id, record.sha256, record.size, record.mime) == (stored.id, stored.sha256, stored.size, "image/png")

    # An anonymous flow keeps only the day a file came.
    other = await store(app.db, tmp_path / "media", pdf(), max_bytes=10**6, now=now)
    async with app.db.transaction() as tx:
        assert await tx.media.link(other.id, "complaint", "c-2", coarse_time=now)
        record = await tx.media.get(other.id)
    assert record is not None and record.created_at == datetime(now.year, now.month, now.day, tzinfo=UTC)


# -- cleaning up ------------------------------------------------------------------------------------------
def _age(path: Path, seconds: float) -> None:
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


async def test_purge_removes_unlinked_files_and_leftovers_and_keeps_linked_ones(media_bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = media_bot
    folder = tmp_path / "media"
    hour_ago = datetime.now(UTC) - timedelta(hours=1)

    async def put(data: bytes, at: datetime, owner: str | None):  # type: ignore[no-untyped-def]
        stored = await store(app.db, folder, data, max_bytes=10**6, now=at)
        if owner:
            async with app.db.transaction() as tx:
                assert await tx.media.link(stored.id, "claim", owner)
        _age(path_of(folder, stored.sha256), 3600)
        return stored

    linked = await put(png(seed=10), hour_ago, "LP2026-000001")
    shared = await put(png(seed=11), hour_ago, None)
    await put(png(seed=11), hour_ago, "LP2026-000002")  # the same bytes, linked by another turn
    orphan = await put(pdf(), hour_ago, None)
    fresh = await put(png(seed=12), datetime.now(UTC), None)  # its turn may still be running
    os.utime(path_of(folder, fresh.sha256))
    leftover = folder / TEMP_DIR / "abc.half-written"
    leftover.write_bytes(b"\x89PNG half")
    _age(leftover, 3600)
    # A file moved aside by a purge that stopped midway, which a row names again meanwhile.
    renamed = path_of(folder, linked.sha256)
    os.replace(renamed, renamed.with_name(renamed.name + TOMBSTONE))

    deleted = await purge_unlinked(app.db, folder, datetime.now(UTC) - timedelta(minutes=10))

    assert deleted == 2  # the orphan and the half-written file
    left = {p.name for p in files_under(folder)}
    assert left == {linked.sha256, shared.sha256, fresh.sha256}
    rows = await media_rows(app)
    assert sorted(r.owner_id or "-" for r in rows) == ["-", "LP2026-000001", "LP2026-000002"]
    assert orphan.id not in {r.id for r in rows} and shared.id not in {r.id for r in rows}
    assert path_of(folder, linked.sha256).read_bytes() == png(seed=10)


async def test_a_turn_that_fails_leaves_its_file_to_the_purge(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    flow = media_flow()

    @flow.on("file")
    async def fails_after_linking(turn: Turn) -> None:
        stored = received(turn)
        assert stored is not None
        await turn.tx.media.link(stored.id, "test", turn.user_key)
        raise RuntimeError("the flow has a bug")

    app.flows[flow.name] = flow
    (tmp_path / "photo.png").write_bytes(png())
    line = console_line(dispatcher)
    await line("/mediatest")
    out = await line(f"/photo {tmp_path / 'photo.png'}")
    assert t("engine.sorry") in out.text
    [row] = await media_rows(app)
    assert row.owner_kind is None  # the link was rolled back with the turn
    folder = app.settings.media_path()
    assert len(files_under(folder)) == 1
    _age(path_of(folder, row.sha256), 7200)

    assert await purge_unlinked(app.db, folder, datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert await media_rows(app) == [] and files_under(folder) == []


async def test_the_media_folder_defaults_to_beside_the_database(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert make_settings().media_path() == tmp_path / "media"
    assert make_settings(media_dir="/srv/gigunion/files").media_path() == Path("/srv/gigunion/files")
    assert make_settings().media_max_bytes == 10 * 1024 * 1024
    from bot.config import load_settings

    config = tmp_path / "gigunion.toml"
    config.write_text('[media]\ndir = "/data/media"\nmax_bytes = 5000000\n', "utf-8")
    loaded = load_settings(config, environ={})
    assert (loaded.media_dir, loaded.media_max_bytes) == ("/data/media", 5_000_000)
    env = load_settings(None, environ={"GIGUNION_MEDIA_MAX_BYTES": "1234"})
    assert env.media_max_bytes == 1234


async def test_the_migration_matches_the_schema(settings) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.schema import metadata

    async with running_bot(settings):  # migrates
        pass

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if "media" in repr(d)]

    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            assert (await conn.execute(select(func.count()).select_from(media))).scalar_one() == 0
    finally:
        await engine.dispose()
