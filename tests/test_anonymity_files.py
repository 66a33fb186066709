"""Someone who copies the database files (gigunion.db, -wal and -shm) right after a complaint is sent
cannot find its text, nor the sender's user key next to anything of it: the bytes are scanned.

For every page (4096 bytes in the file; each frame in the -wal) where the user key appears, no Fernet
token in that page opens, with the deployment's key, to anything of the draft. Two more runs show the
scan would see it: without the scrub after submission, the old session pages in the -wal still hold
the encrypted draft next to the user key; without encryption the text is there in clear.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from tests.chat import Chat, join
from tests.test_complain_flow import complain

# Recognisable, in both scripts, and unlike anything else the bot writes.
TEXT = "QUOKKA-7731 站长克扣押金五十元 QUOKKA-7731"
PIECES = (TEXT, "QUOKKA-7731", "站长克扣押金")
USER = "zz-sender-9157"
USER_KEY = f"console:{USER}".encode()
FERNET = re.compile(rb"gAAAAA[A-Za-z0-9_\-]{40,}={0,2}")
WAL_HEADER, FRAME_HEADER = 32, 24


def pages(data: bytes, size: int, *, wal: bool) -> list[bytes]:
    if not wal:
        return [data[i : i + size] for i in range(0, len(data), size)]
    frames = []
    at = WAL_HEADER
    while at + FRAME_HEADER + size <= len(data):
        frames.append(data[at + FRAME_HEADER : at + FRAME_HEADER + size])
        at += FRAME_HEADER + size
    return frames


def opens_to_draft(app: BotContext, page: bytes) -> list[str]:
    found = []
    for token in FERNET.findall(page):
        try:
            plain = app.keyring.decrypt(token.decode())
        except ValueError:  # cut by the page's edge, or not ours
            continue
        if any(piece in plain for piece in ("美团", *PIECES)) or plain.strip('"') in ("company", "pay"):
            found.append(plain)
    return found


def copy_files(app: BotContext, into: Path) -> dict[str, bytes]:
    """The three files as a copy taken now would have them."""
    db = Path(app.settings.database_url.split(":///", 1)[1])
    into.mkdir()
    copied = {}
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copyfile(source, into / source.name)
            copied[suffix] = (into / source.name).read_bytes()
    return copied


def leaks(app: BotContext, files: dict[str, bytes], code: str = "") -> list[str]:
    """Everything the scan finds: text (or the receipt code) in clear, and draft tokens in pages that
    name the sender."""
    problems = [
        f"{suffix or 'db'}: the receipt code in clear"
        for suffix, data in files.items()
        if code and code.encode() in data
    ]
    size = int.from_bytes(files[""][16:18], "big")
    size = 65536 if size == 1 else size
    for suffix, data in files.items():
        for piece in PIECES:
            if piece.encode() in data:
                problems.append(f"{suffix or 'db'}: {piece!r} in clear")
        if suffix == "-shm":
            continue
        for n, page in enumerate(pages(data, size, wal=suffix == "-wal")):
            if USER_KEY in page:
                problems += [f"{suffix or 'db'} page {n}: {p!r} beside the user key" for p in opens_to_draft(app, page)]
    return problems


async def submit_and_copy(app: BotContext, dispatcher: Dispatcher, into: Path) -> tuple[dict[str, bytes], str]:
    chat = Chat(dispatcher, USER)
    await join(chat, phone="13900009157", name="赵六")  # a member: the case with most to link
    code = await complain(chat, TEXT, ratings=(2, 4, 1))
    return copy_files(app, into), code


def session_data(db_copy: Path) -> str:
    conn = sqlite3.connect(db_copy)
    try:
        return conn.execute("SELECT data FROM sessions WHERE user_key = ?", (USER_KEY.decode(),)).fetchone()[0]
    finally:
        conn.close()


async def test_a_copy_taken_right_after_submission_holds_the_text_and_the_sender_nowhere_together(
    bot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    files, code = await submit_and_copy(app, dispatcher, tmp_path / "copy")
    assert leaks(app, files, code) == []
    assert session_data(tmp_path / "copy" / "gigunion.db") == "{}"
    # The complaint is there all the same, encrypted.
    assert FERNET.search(files[""])


async def test_without_the_scrub_the_scan_finds_the_draft_beside_the_sender(bot, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot

    async def no_scrub() -> bool:
        return True

    monkeypatch.setattr(app.db, "scrub", no_scrub)
    files, code = await submit_and_copy(app, dispatcher, tmp_path / "copy")
    found = leaks(app, files, code)
    assert found and all("beside the user key" in f for f in found), found
    assert any(f.startswith("-wal") for f in found)


@pytest.mark.parametrize("scrub", [True, False])
async def test_without_encryption_the_scan_finds_the_text(bot, tmp_path: Path, monkeypatch, scrub: bool) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    monkeypatch.setattr(app.keyring, "encrypt", lambda plain: plain)
    monkeypatch.setattr(app.keyring, "encrypt_dated", lambda plain, day: plain)
    monkeypatch.setattr(app.keyring, "decrypt", lambda token: token)
    if not scrub:

        async def no_scrub() -> bool:
            return True

        monkeypatch.setattr(app.db, "scrub", no_scrub)
    files, code = await submit_and_copy(app, dispatcher, tmp_path / "copy")
    assert any("in clear" in f for f in leaks(app, files, code))
