"""The anonymous complaint, its follow-up, and a notice with an event sign-up, end to end on Telegram:
updates posted to the bot's webhook over real HTTP, the bot answering through the fake Bot API, a
photo fetched by getFile, a broadcast delivered by `BroadcastSender` and its button pressed back.
Wrong input at each step gets a polite answer and keeps the step."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import re
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.engine.messages import T
from bot.locale import Locale
from bot.services import broadcasts as broadcast_service
from bot.services import complaints as complaint_service
from bot.services.broadcast_sender import FINISHED, BroadcastSender, telegram_deliverer
from bot.services.broadcasts import Segment
from bot.services.complaints import complaint_settings, local_today
from bot.services.events import create_event
from bot.services.media import path_of
from storage.schema import complaints, media, outbox, processed_updates
from tests.broadcast_helpers import add_members, chat_of
from tests.fakes.telegram_api import user_json
from tests.fakes.telegram_harness import webhook_bot
from tests.test_media import GPS_IFD, jpeg_with_gps

L = Locale()
RIDER = 7401
STAFF = "telegram:7499"
RECEIPT = re.compile(r"\b(\d{4}) (\d{4}) (\d{4}) (\d{4})\b")
SECRET_TEXT = "站长每天扣我五十块钱押金，还不让请假"


def t(key: str, **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.render("zh_CN", T(key, **ctx), channel="telegram")


@pytest.fixture
async def hook(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with webhook_bot(app, dispatcher) as client:
        yield client


def texts(fake, chat_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.get("text") or m.get("caption") or "" for m in fake.sent(chat_id)]


async def said(hook, fake, update: dict, chat_id: int = RIDER) -> str:  # type: ignore[no-untyped-def]
    """Everything the bot sent in this chat in answer to `update` (the webhook answers once handled)."""
    before = len(fake.sent(chat_id))
    response = await hook.post(update)
    assert response.status_code == 200
    return "\n".join(texts(fake, chat_id)[before:])


def sticker(fake, user: dict) -> dict:  # type: ignore[no-untyped-def]
    return fake.message(
        user,
        sticker={
            "file_id": "sticker-1",
            "file_unique_id": "us1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        },
    )


def photo(fake, user: dict, file_id: str) -> dict:  # type: ignore[no-untyped-def]
    sizes = [{"file_id": file_id, "file_unique_id": f"u-{file_id}", "width": 64, "height": 48}]
    return fake.message(user, photo=sizes)


def marker_key(update: dict) -> str:
    return hashlib.sha256(f"telegram:{update['update_id']}".encode()).hexdigest()[:48]


async def count(app, table) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return (await tx.conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_a_whole_anonymous_complaint_by_taps_with_garbage_and_a_redelivery(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    rider = user_json(RIDER, first_name="王五")
    jpeg = jpeg_with_gps()
    assert Image.open(io.BytesIO(jpeg)).getexif().get_ifd(GPS_IFD)  # the sample has GPS
    fake.add_file("gps-photo", jpeg)

    intro = await said(hook, fake, fake.text(rider, "/complain"))
    assert "不留的：您是谁" in intro
    assert fake.labels(RIDER) == [t("complain.begin"), t("track.menu"), t("complain.not_now")]
    assert t("complain.intro_choose") in await said(hook, fake, sticker(fake, rider))

    assert t("complain.ask_target") in await said(hook, fake, fake.press(rider, t("complain.begin")))
    assert t("complain.unknown_target") in await said(hook, fake, fake.text(rider, "不存在的公司"))
    assert t("complain.ask_category") in await said(hook, fake, fake.press(rider, "美团"))

    assert t("complain.choose_category") in await said(hook, fake, fake.document(rider))
    assert "第 1 项（共 5 项）" in await said(hook, fake, fake.press(rider, t("complain.cat_pay")))
    assert t("complain.bad_score") in await said(hook, fake, fake.text(rider, "十分"))
    assert "第 2 项" in await said(hook, fake, fake.press(rider, t("complain.score", n=2)))
    assert t("complain.ask_description", most=1000) in await said(hook, fake, fake.press(rider, t("complain.skip_all")))

    # Not words where words are asked: a sticker, a document (not fetched), then too many words.
    assert t("complain.description_words") in await said(hook, fake, sticker(fake, rider))
    assert t("complain.description_words") in await said(hook, fake, fake.document(rider))
    most = complaint_settings(app).max_description
    long = await said(hook, fake, fake.text(rider, "长" * (most + 1)))
    assert t("complain.description_long", got=most + 1, most=most) in long
    assert fake.requests("getFile") == []
    assert t("complain.ask_pictures", have=0, most=4) in await said(hook, fake, fake.text(rider, SECRET_TEXT))

    # Words where pictures are asked, then the photo, fetched from Telegram before the turn.
    assert t("complain.pictures_hint") in await said(hook, fake, fake.text(rider, "没有照片"))
    got = await said(hook, fake, photo(fake, rider, "gps-photo"))
    assert t("complain.picture_received", count=1, most=4) in got
    assert [c.params["file_id"] for c in fake.requests("getFile", ok=True)] == ["gps-photo"]
    review = await said(hook, fake, fake.press(rider, t("complain.pictures_done")))
    assert "对象：美团" in review and SECRET_TEXT in review and "劳动关系 2 分" in review
    assert t("complain.review_choose") in await said(hook, fake, sticker(fake, rider))

    send = fake.press(rider, t("complain.send"))
    sent = await said(hook, fake, send)
    found = RECEIPT.search(sent)
    assert found and "只显示这一次" in sent
    code = "".join(found.groups())

    # Telegram delivers the same update again: nothing twice, the code not shown again, no answer kept.
    assert (await hook.post(send)).status_code == 200
    assert await count(app, complaints) == 1
    assert sum(code[:4] + " " + code[4:8] in text for text in texts(fake, RIDER)) == 1
    async with app.db.transaction() as tx:
        marker = (
            await tx.conn.execute(select(processed_updates).where(processed_updates.c.key == marker_key(send)))
        ).one()
    assert marker.reply is None

    # The stored picture is the photo without its metadata.
    async with app.db.transaction() as tx:
        [row] = (await tx.conn.execute(select(media))).all()
    stored = path_of(app.settings.media_path(), row.sha256)
    assert stored.read_bytes() != jpeg
    with Image.open(stored) as picture:
        assert dict(picture.getexif()) == {}
        assert "comment" not in picture.info and "exif" not in picture.info

    # The union answers from the desk; the worker reads it with the code, and only with it.
    async with app.db.transaction() as tx:
        complaint = await complaint_service.by_receipt(app, tx, code)
        assert complaint is not None
        await complaint_service.reply(app, tx, complaint.id, "已联系站点核实押金问题", local_today(app))
    assert t("track.ask_code") in await said(hook, fake, fake.text(rider, "/track"))
    assert t("track.code_words") in await said(hook, fake, sticker(fake, rider))
    assert t("track.not_a_code") in await said(hook, fake, fake.text(rider, "123"))
    wrong = "1111 2222 3333 4444" if code != "1111222233334444" else "4444 3333 2222 1111"
    refusal = await said(hook, fake, fake.text(rider, wrong))
    assert "没找到这个回执码" in refusal and "已联系站点" not in refusal
    status = await said(hook, fake, fake.text(rider, " ".join(found.groups())))
    assert t("track.status_answered") in status and "已联系站点核实押金问题" in status
    assert t("track.thread_choose") in await said(hook, fake, sticker(fake, rider))
    assert t("track.ask_add", most=complaint_service.MAX_MESSAGE) in await said(
        hook, fake, fake.press(rider, t("track.add"))
    )
    too_long = "补" * (complaint_service.MAX_MESSAGE + 1)
    assert "写得有点长" in await said(hook, fake, fake.text(rider, too_long))
    assert t("track.added") in await said(hook, fake, fake.text(rider, "押金已经退了一半"))
    async with app.db.transaction() as tx:
        thread = await complaint_service.thread(app, tx, complaint.id)
    assert [m.text for m in thread][-1] == "押金已经退了一半"
    # Every call the bot made was accepted; the code appeared once in the whole chat.
    assert fake.requests(ok=False) == []
    assert sum(code[:4] + " " + code[4:8] in text for text in texts(fake, RIDER)) == 1


async def test_a_notice_with_a_sign_up_button_reaches_members_but_not_the_muted(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    now = app.now()
    async with app.db.transaction() as tx:
        await add_members(tx, 2)  # chats 10001 and 10002
        event = await create_event(
            app,
            tx,
            title="微笑集市",
            description="免费理发、测血压",
            station=None,
            place="西湖驿站",
            starts_at=now + timedelta(days=7),
            signup_deadline=now + timedelta(days=6),
            capacity=5,
            created_by=STAFF,
        )
    keen, quiet = user_json(chat_of(1)), user_json(chat_of(2))
    # The second member turns notices off, as a member would: by the words.
    muted = await said(hook, fake, fake.text(quiet, "关闭通知"), chat_of(2))
    assert "工会通知已经关了" in muted
    assert "本来就是关着的" in await said(hook, fake, fake.text(quiet, "/mute"), chat_of(2))

    async with app.db.transaction() as tx:
        b = await broadcast_service.create(
            app, tx, text="周六微笑集市，欢迎来", segment=Segment(), created_by=STAFF, event_id=event.id
        )
        await broadcast_service.start(app, tx, b.id, by=STAFF, background=False)
    before = len(fake.sent(chat_of(2)))
    async with telegram_deliverer(app.settings) as deliverer:
        assert await BroadcastSender(app, b.id, {"telegram": deliverer}).run() == FINISHED

    assert len(fake.sent(chat_of(2))) == before  # muted: nothing
    notice = fake.last_with_buttons(chat_of(1))
    assert "周六微笑集市，欢迎来" in notice["text"] and "关闭通知" in notice["text"]
    [button] = [b for row in notice["reply_markup"]["inline_keyboard"] for b in row]
    assert button == {"text": "我要报名", "callback_data": f"say|报名 {event.id}"}
    async with app.db.transaction() as tx:
        report = await broadcast_service.report(app, tx, b.id)
    assert (report.recipients, report.sent, report.skipped_muted) == (1, 1, 1)

    # The member presses it, however long after, wherever the conversation is.
    assert t("menu.prompt") in await said(hook, fake, fake.text(keen, "/menu"), chat_of(1))
    as_delivered = copy.deepcopy(notice)
    signed = await said(hook, fake, fake.press(keen, "我要报名", notice), chat_of(1))
    assert "报上了" in signed and "微笑集市" in signed, signed
    # The notice keeps its text and reads as pressed, its button gone.
    assert notice["text"].endswith("👉 我要报名") and "周六微笑集市" in notice["text"] and "reply_markup" not in notice
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key(f"telegram:{chat_of(1)}")
        signup = await tx.events.signup(event.id, member.id)
    assert signup is not None and signup.status == "confirmed"
    # A second tap on the same notice (another device still showing the button) is not a second
    # sign-up; the words the button says, typed, tell the member they already have the place.
    assert await said(hook, fake, fake.press(keen, "我要报名", as_delivered), chat_of(1)) == ""
    again = await said(hook, fake, fake.text(keen, f"报名 {event.id}"), chat_of(1))
    assert "您已经报过「微笑集市」了" in again
    async with app.db.transaction() as tx:
        assert (await tx.events.get(event.id)).left == 4
    assert t("engine.choose_option") in await said(hook, fake, fake.text(keen, "报名 abc"), chat_of(1))

    # Notices back on: the next one arrives.
    assert "工会通知已经打开" in await said(hook, fake, fake.text(quiet, "打开通知"), chat_of(2))
    async with app.db.transaction() as tx:
        second = await broadcast_service.create(app, tx, text="下周讲座", segment=Segment(), created_by=STAFF)
        await broadcast_service.start(app, tx, second.id, by=STAFF, background=False)
    async with telegram_deliverer(app.settings) as deliverer:
        assert await BroadcastSender(app, second.id, {"telegram": deliverer}).run() == FINISHED
    assert "下周讲座" in texts(fake, chat_of(2))[-1]
    assert [c for c in fake.requests(ok=False) if c.method != "answerCallbackQuery"] == []


async def test_a_receipt_telegram_refuses_for_a_moment_is_not_queued_under_the_sender(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    rider = user_json(RIDER + 1)
    await hook.post(fake.text(rider, "/complain"))
    for label in (t("complain.begin"), "美团", t("complain.cat_pay"), t("complain.skip_all")):
        await hook.post(fake.press(rider, label))
    await hook.post(fake.text(rider, SECRET_TEXT))
    await hook.post(fake.press(rider, t("complain.no_pictures")))
    fake.fail("sendMessage", 429, retry_after=1)  # the answer to 匿名提交 is refused once
    await hook.post(fake.press(rider, t("complain.send")))
    assert await count(app, complaints) == 1
    async with app.db.transaction() as tx:
        queued = (
            await tx.conn.execute(select(outbox.c.body).where(outbox.c.user_key == f"telegram:{RIDER + 1}"))
        ).all()
    assert not [body for (body,) in queued if body and RECEIPT.search(body)]
    # It is tried again from memory after Telegram's retry-after: the rider still gets their code.
    for _ in range(100):
        if any(RECEIPT.search(text) for text in texts(fake, RIDER + 1)):
            break
        await asyncio.sleep(0.05)
    assert sum(bool(RECEIPT.search(text)) for text in texts(fake, RIDER + 1)) == 1
