"""The media store: photos and documents people send, fetched before their turn, checked by their
content, kept on disk under their sha256 and recorded in the `media` table.

A turn may be re-run and does no network or file I/O, so the work happens before it: the dispatcher
hands each `Incoming` with a file to `receive`, which, when the user's current step takes files, fetches
it through the channel's fetcher (`BotContext.media_fetchers`), checks it (JPEG, PNG or PDF by their
bytes, whole, within `media_max_bytes`), writes it once under its content hash and adds an unlinked row.
The turn then sees `incoming.media.stored` or `incoming.media.refused`. In a flow:

    @flow.ask("photo")
    async def ask_photo(turn):
        expect_file(turn, strip_metadata=True)   # this step takes files; GPS and EXIF are removed
        turn.say("media.send_file")
        turn.request(Request.PHOTO)

    @flow.on("photo")
    async def on_photo(turn):
        stored = received(turn)                  # None: the rider was told why, the step is asked again
        if stored is None:
            return
        await turn.tx.media.link(stored.id, "claim", claim_number)
        turn.goto("next")

A file no turn linked (the turn failed, the rider cancelled) is removed by `purge_unlinked`.

In an anonymous flow (`Flow(anonymous=True)`) the store decides, whatever the step asked: pictures only
(a PDF carries its author, software and times, which we cannot clean with confidence), always re-encoded
from their pixels (no EXIF, GPS, camera serial or time taken), and the row stamped with the end of its
day instead of the minute it came. Elsewhere a step asks for stripping (both of today's steps that take
photos do) and a file not asked for is kept exactly as sent: a document may be evidence as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.engine.flow import anonymous_conversation
from bot.engine.messages import Incoming, Media, Refusal, StoredMedia

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from bot.engine.flow import Turn
    from storage import Database

log = logging.getLogger(__name__)

JPEG, PNG, PDF = "image/jpeg", "image/png", "application/pdf"
_MAGIC = ((b"\xff\xd8\xff", JPEG), (b"\x89PNG\r\n\x1a\n", PNG), (b"%PDF-", PDF))
_PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG"}
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and checksum: a whole PNG has them
# Far above any phone camera (a 200-megapixel sensor aside): a small file that decodes to a huge
# picture would take the process's memory.
MAX_PIXELS = 60_000_000
# PDF readers look for the end marker within the last kilobyte; a file cut short has none there.
_PDF_TAIL = 1024
# Session data marking the step that takes files (set by `expect_file`).
EXPECT = "_media"
TEMP_DIR = "tmp"
TOMBSTONE = ".purging"

_REFUSAL_KEYS = {
    Refusal.WRONG_TYPE: "media.refused_wrong_type",
    Refusal.TOO_BIG: "media.refused_too_big",
    Refusal.TRUNCATED: "media.refused_truncated",
    Refusal.EXPIRED: "media.refused_expired",
    Refusal.DOWNLOAD_FAILED: "media.refused_download_failed",
}


class MediaRefused(Exception):
    """A file that will not be kept, and why: raised by fetchers and by the content check."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Fetcher(Protocol):
    """One channel's way to get a file's bytes. Raises `MediaRefused` for what the user can be told
    (too big, expired); any other error is answered as a failed download."""

    async def fetch(self, media: Media, max_bytes: int) -> bytes: ...


class LocalFiles:
    """The console's `/photo PATH` and `/file PATH`: the file on this machine."""

    async def fetch(self, media: Media, max_bytes: int) -> bytes:
        return await asyncio.to_thread(_read_local, media.file_id, max_bytes)


def _read_local(path: str, max_bytes: int) -> bytes:
    try:
        with Path(path).expanduser().open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError:
        raise MediaRefused(Refusal.DOWNLOAD_FAILED) from None
    if len(data) > max_bytes:
        raise MediaRefused(Refusal.TOO_BIG)
    return data


# -- in a flow ---------------------------------------------------------------------------------------
def expect_file(turn: Turn, *, strip_metadata: bool = False) -> None:
    """Call in a step's ask: files sent at this step are fetched and stored before its handler runs,
    with image metadata (EXIF, GPS) removed when `strip_metadata`."""
    turn.data[EXPECT] = {"step": turn.session.step, "strip": strip_metadata}


def received(turn: Turn) -> StoredMedia | None:
    """The file this turn brought, stored; or None once the turn has been told to explain politely
    (wrong type, too big, incomplete, expired, not received, or no file at all) and ask again."""
    media = turn.incoming.media
    if media is not None and media.stored is not None:
        return media.stored
    if media is not None and media.refused is not None:
        turn.retry(_REFUSAL_KEYS[media.refused], limit=size_text(turn.app.settings.media_max_bytes))
    else:
        turn.retry("media.send_file")
    return None


def size_text(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 1 else f"{max(1, round(size / 1024))} KB"


# -- before the turn -----------------------------------------------------------------------------------
async def receive(app: BotContext, incoming: Incoming) -> Incoming:
    """The incoming message with its file fetched and stored (or refused), when the user's current
    step takes files; otherwise unchanged. Run before the turn, outside its transaction."""
    media = incoming.media
    if media is None or media.stored is not None or media.refused is not None:
        return incoming
    expected = await _expected(app, incoming.user_key)
    if expected is None:
        return incoming
    settings = app.settings
    try:
        fetcher = app.media_fetchers.get(incoming.channel)
        if fetcher is None:
            raise MediaRefused(Refusal.DOWNLOAD_FAILED)
        data = await fetcher.fetch(media, settings.media_max_bytes)
        anonymous = bool(expected.get("anonymous"))
        stored = await store(
            app.db,
            settings.media_path(),
            data,
            max_bytes=settings.media_max_bytes,
            now=_end_of_day(app.now()) if anonymous else app.now(),
            strip_metadata=anonymous or bool(expected.get("strip")),
            pictures_only=anonymous,
        )
    except MediaRefused as e:
        log.info("media from %s refused: %s", incoming.channel, e.reason.value)
        return replace(incoming, media=replace(media, refused=e.reason))
    except Exception as e:  # a platform or network error: the rider is asked to send it again
        log.warning("media from %s not fetched: %s", incoming.channel, type(e).__name__)
        return replace(incoming, media=replace(media, refused=Refusal.DOWNLOAD_FAILED))
    return replace(incoming, media=replace(media, stored=stored))


async def _expected(app: BotContext, user_key: str) -> dict | None:  # type: ignore[type-arg]
    # The user's lock is held: their session cannot change between this read and their turn.
    async with app.db.transaction() as tx:
        session = await tx.sessions.get(user_key)
    if session is None or session.flow is None:
        return None
    expected = session.data.get(EXPECT)
    if isinstance(expected, dict) and expected.get("step") == session.step:
        return {**expected, "anonymous": anonymous_conversation(app.flows, session.flow, session.data)}
    return None


def _end_of_day(now: datetime) -> datetime:
    # No finer time than the day, and never purged as unlinked sooner than it would have been.
    return datetime.combine(now.date() + timedelta(days=1), time(), now.tzinfo)


# -- checking and keeping ------------------------------------------------------------------------------
async def store(
    db: Database,
    media_dir: Path,
    data: bytes,
    *,
    max_bytes: int,
    now: datetime,
    strip_metadata: bool = False,
    pictures_only: bool = False,
) -> StoredMedia:
    """Check `data` by its content, write it once under its sha256 and add an unlinked row. Raises
    `MediaRefused` (nothing written) for a wrong type (a PDF too, with `pictures_only`), a file too big
    or one cut short."""
    mime, content = await asyncio.to_thread(_prepare, data, max_bytes, strip_metadata, pictures_only)
    sha = hashlib.sha256(content).hexdigest()
    await asyncio.to_thread(_place, media_dir, sha, content)
    media_id = secrets.token_urlsafe(16)
    async with db.transaction() as tx:
        await tx.media.add(media_id, sha, mime, len(content), now)
    # A purge may have taken the file away between writing it and the row naming it: placed again (or
    # just touched) now that the row is there, after which no purge takes it (see `purge_unlinked`).
    await asyncio.to_thread(_place, media_dir, sha, content)
    return StoredMedia(media_id, mime, len(content), sha)


def path_of(media_dir: Path, sha256: str) -> Path:
    """Where a stored file's bytes are."""
    return media_dir / sha256[:2] / sha256


def check(data: bytes, max_bytes: int) -> str:
    """The file's MIME type, judged by its bytes alone; raises `MediaRefused` when it is not a whole
    JPEG, PNG or PDF within `max_bytes`."""
    if len(data) > max_bytes:
        raise MediaRefused(Refusal.TOO_BIG)
    mime = next((m for magic, m in _MAGIC if data.startswith(magic)), None)
    if mime is None:
        raise MediaRefused(Refusal.WRONG_TYPE)
    if mime == PDF:
        if b"%%EOF" not in data[-_PDF_TAIL:]:
            raise MediaRefused(Refusal.TRUNCATED)
        return mime
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[mime]]) as img:
            if img.width * img.height > MAX_PIXELS:
                raise MediaRefused(Refusal.TOO_BIG)
            if mime == PNG:
                img.verify()  # every chunk's checksum, through to IEND: a PNG cut short fails here
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[mime]]) as img:
            img.load()  # decodes every pixel: a JPEG cut short fails here
    except MediaRefused:
        raise
    except Image.DecompressionBombError:
        raise MediaRefused(Refusal.TOO_BIG) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        # The right signature but not a picture Pillow can read through: cut short or damaged.
        raise MediaRefused(Refusal.TRUNCATED) from None
    if mime == PNG and data.rfind(_PNG_END) < 0:  # verify() stops before the last chunk's checksum
        raise MediaRefused(Refusal.TRUNCATED)
    return mime


def without_metadata(data: bytes, mime: str) -> bytes:
    """The picture re-encoded from its pixels alone: no EXIF (GPS, camera, time), XMP or comments.
    It is turned upright first, since the EXIF orientation that said how goes too."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        icc = img.info.get("icc_profile")
        transparency = img.info.get("transparency")
        clean = ImageOps.exif_transpose(img)
        # Saving reads some fields from `info` (a JPEG comment, a PNG's text); keep only colour.
        clean.info = {k: v for k, v in (("icc_profile", icc), ("transparency", transparency)) if v is not None}
        out = io.BytesIO()
        if mime == JPEG:
            clean.save(out, "JPEG", quality=92, icc_profile=icc)
        else:
            clean.save(out, "PNG", icc_profile=icc)
        return out.getvalue()


def _prepare(data: bytes, max_bytes: int, strip_metadata: bool, pictures_only: bool = False) -> tuple[str, bytes]:
    mime = check(data, max_bytes)
    if pictures_only and mime not in _PIL_FORMAT:
        raise MediaRefused(Refusal.WRONG_TYPE)
    if strip_metadata and mime in _PIL_FORMAT:
        return mime, without_metadata(data, mime)
    return mime, data


def _place(media_dir: Path, sha: str, content: bytes) -> None:
    """Write the file under its hash: to a temporary file first, renamed into place once whole, so a
    crash never leaves half a file under a real name."""
    path = path_of(media_dir, sha)
    try:
        os.utime(path)  # already here: fresh again, so a purge running now leaves it
        return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = media_dir / TEMP_DIR
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=temp_dir, prefix=sha[:12] + ".")  # 0600: only the bot reads it
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


# -- housekeeping --------------------------------------------------------------------------------------
async def purge_unlinked(db: Database, media_dir: Path, older_than: datetime) -> int:
    """For the scheduled housekeeping: delete the rows of files that no turn linked and that were
    fetched before `older_than`, then every file on disk that no row names and that was last written
    before then (temporary files left by a crash included). Returns how many files were deleted."""
    async with db.transaction() as tx:
        await tx.media.purge_unlinked(older_than)
    cutoff = older_than.timestamp()
    stored, temps, tombs = await asyncio.to_thread(_old_files, media_dir, cutoff)
    deleted = await asyncio.to_thread(_unlink_all, temps)
    if stored:
        async with db.transaction() as tx:
            named = await tx.media.referenced(stored)
        tombs += await asyncio.to_thread(_move_aside, [path for sha, path in stored.items() if sha not in named])
    if not tombs:
        return deleted
    # Moved aside before the last look at the table: `store` adds its row before looking for its file,
    # so a file stored again meanwhile is either seen missing by `store` (and written again) or seen
    # named here (and put back). Files left aside by a purge that stopped midway are settled here too.
    async with db.transaction() as tx:
        named = await tx.media.referenced(p.name.removesuffix(TOMBSTONE) for p in tombs)
    return deleted + await asyncio.to_thread(_settle_aside, tombs, named)


def _old_files(media_dir: Path, cutoff: float) -> tuple[dict[str, Path], list[Path], list[Path]]:
    stored: dict[str, Path] = {}
    temps: list[Path] = []
    tombs: list[Path] = []
    if not media_dir.is_dir():
        return stored, temps, tombs
    for path in _walk(media_dir):
        try:
            if path.stat().st_mtime >= cutoff:
                continue
        except FileNotFoundError:
            continue
        if path.parent.name == TEMP_DIR:
            temps.append(path)
        elif path.name.endswith(TOMBSTONE):
            tombs.append(path)
        elif len(path.name) == 64:
            stored[path.name] = path
    return stored, temps, tombs


def _walk(media_dir: Path) -> Iterator[Path]:
    for folder in media_dir.iterdir():
        if folder.is_dir():
            yield from (p for p in folder.iterdir() if p.is_file())


def _unlink_all(paths: list[Path]) -> int:
    done = 0
    for path in paths:
        with suppress(FileNotFoundError):
            path.unlink()
            done += 1
    return done


def _move_aside(paths: list[Path]) -> list[Path]:
    aside = []
    for path in paths:
        tomb = path.with_name(path.name + TOMBSTONE)
        with suppress(FileNotFoundError):
            os.replace(path, tomb)
            aside.append(tomb)
    return aside


def _settle_aside(tombs: list[Path], named: set[str]) -> int:
    deleted = 0
    for tomb in tombs:
        sha = tomb.name.removesuffix(TOMBSTONE)
        if sha in named and not tomb.with_name(sha).exists():
            os.replace(tomb, tomb.with_name(sha))
            continue
        with suppress(FileNotFoundError):
            tomb.unlink()
            deleted += sha not in named
    return deleted
