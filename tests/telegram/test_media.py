"""Files riders send on Telegram, by long polling against the fake Bot API over real HTTP: getFile, then
the file's bytes from its path, before the turn; kept once by content, or refused with a polite answer
and nothing left behind."""

from __future__ import annotations

import pytest

from tests.fakes.telegram_api import user_json
from tests.fakes.telegram_harness import polling_bot
from tests.test_media import (
    FAKE_JPEG,
    files_under,
    jpeg_with_gps,
    media_rows,
    pdf,
    png,
    session_step,
    t,
    truncated_png,
    with_media_flows,
)

RIDER = 7301
MB = 1024 * 1024


@pytest.fixture
async def channel(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    with_media_flows(app)
    async with polling_bot(app, dispatcher) as ch:
        yield ch


def texts_to(fake, chat_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.params["text"] for c in fake.requests("sendMessage", ok=True) if c.params["chat_id"] == chat_id]


async def answer(fake, update: dict) -> str:  # type: ignore[no-untyped-def]
    """What the bot says to this update (it answers each turn with one message here)."""
    before = len(texts_to(fake, RIDER))
    await fake.push(update)
    return await fake.wait_for(lambda: texts_to(fake, RIDER)[before:] and texts_to(fake, RIDER)[before])


def photo(fake, file_id: str) -> dict:  # type: ignore[no-untyped-def]
    sizes = [{"file_id": file_id, "file_unique_id": f"u-{file_id}", "width": 1280, "height": 960}]
    return fake.message(user_json(RIDER), photo=sizes)


def document(fake, file_id: str, mime: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    doc = {"file_id": file_id, "file_unique_id": f"u-{file_id}", "mime_type": mime, "file_name": name}
    return fake.message(user_json(RIDER), document=doc)


async def test_photos_and_documents_are_fetched_checked_and_kept_once(channel, fake, bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    jpeg = jpeg_with_gps()
    fake.add_file("photo-a", jpeg)
    fake.add_file("photo-a-again", jpeg)  # the same picture sent twice has a new file_id
    fake.add_file("doc-png", png())
    fake.add_file("doc-pdf", pdf())

    assert t("media.send_file") in await answer(fake, fake.text(user_json(RIDER), "/mediatest"))
    for update in (
        photo(fake, "photo-a"),
        document(fake, "doc-png", "image/png", "scan.png"),
        document(fake, "doc-pdf", "application/pdf", "invoice.pdf"),
        photo(fake, "photo-a-again"),
    ):
        assert t("media.received") in await answer(fake, update)

    assert [c.params["file_id"] for c in fake.requests("getFile", ok=True)] == [
        "photo-a",
        "doc-png",
        "doc-pdf",
        "photo-a-again",
    ]
    rows = await media_rows(app)
    assert len(rows) == 4 and {(r.owner_kind, r.owner_id) for r in rows} == {("test", f"telegram:{RIDER}")}
    assert sorted(r.mime for r in rows) == ["application/pdf", "image/jpeg", "image/jpeg", "image/png"]
    assert sorted(p.read_bytes() for p in files_under(app.settings.media_path())) == sorted([jpeg, png(), pdf()])


@pytest.mark.parametrize(
    ("file_id", "mime", "data", "size", "said"),
    [
        ("fake-jpeg", "image/jpeg", FAKE_JPEG, None, "media.refused_wrong_type"),
        ("cut-png", "image/png", truncated_png(), None, "media.refused_truncated"),
        # Bigger than the bot takes (10 MB): refused from getFile's answer, before any download.
        ("big-pdf", "application/pdf", pdf(), 11 * MB, "media.refused_too_big"),
        # Bigger than bots may download: Telegram's getFile itself refuses it.
        ("huge-pdf", "application/pdf", pdf(), 25 * MB, "media.refused_too_big"),
        ("gone", "application/pdf", None, None, "media.refused_download_failed"),
    ],
)
async def test_bad_files_get_a_polite_answer_and_leave_nothing(
    channel, fake, bot, file_id, mime, data, size, said
) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    if data is not None:
        fake.add_file(file_id, data, size=size)
    await answer(fake, fake.text(user_json(RIDER), "/mediatest"))

    out = await answer(fake, document(fake, file_id, mime, "file"))

    assert t(said, limit="10 MB") in out and t("media.send_file") in out
    assert await session_step(app, f"telegram:{RIDER}") == "file"
    assert await media_rows(app) == [] and files_under(app.settings.media_path()) == []
    if size == 25 * MB:
        [refused] = fake.requests("getFile", ok=False)
        assert refused.status == 400
    # The rider can send a good file straight away.
    fake.add_file("good", png())
    assert t("media.received") in await answer(fake, photo(fake, "good"))
