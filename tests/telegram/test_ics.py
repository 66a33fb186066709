"""A booking made on Telegram brings its calendar file as a document (sendDocument), named by the
booking's reference, before the words that say the time and the place."""

from __future__ import annotations

from datetime import timedelta

import icalendar
import pytest

from bot.engine.messages import T
from bot.locale import Locale
from tests.fakes.telegram_api import user_json
from tests.fakes.telegram_harness import webhook_bot

L = Locale()


def t(key: str, **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.render("zh_CN", T(key, **ctx), channel="telegram")


@pytest.fixture
async def hook(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with webhook_bot(app, dispatcher) as client:
        yield client


async def test_the_calendar_file_arrives_as_a_document(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    now = app.now()
    start = (now + timedelta(days=3)).replace(second=0, microsecond=0)
    async with app.db.transaction() as tx:
        [slot] = await tx.bookings.add_slots(
            kind="legal",
            counsellor="telegram:1",
            station="0",
            starts=[start],
            duration=timedelta(minutes=45),
            capacity=1,
            now=now,
        )
    rider = user_json(7301, first_name="张三")
    await hook.post(fake.text(rider, "/start"))
    await hook.post(fake.press(rider, "同意"))
    await hook.post(fake.contact(rider, "+86 138 0013 8301", owner_id=7301, first_name="张三"))
    for label in ("张三", "美团", "外卖骑手", "确认入会"):
        await hook.post(fake.press(rider, label))

    await hook.post(fake.text(rider, "/book"))
    await hook.post(fake.press(rider, "法律咨询"))
    await hook.post(fake.press(rider, 0))  # the one day with a free time
    await hook.post(fake.press(rider, 0))  # its one time
    await hook.post(fake.press(rider, t("book.mode_button_phone")))
    await hook.post(fake.press(rider, t("book.skip_topic")))
    assert fake.requests("sendDocument") == []  # nothing before the booking is made
    await hook.post(fake.press(rider, t("book.confirm")))

    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key("telegram:7301")
        [booking] = await tx.bookings.for_member(member.id)
    [call] = fake.requests("sendDocument")
    assert call.params["chat_id"] == 7301 and call.params["document_name"] == f"{booking.reference}.ics"
    event = icalendar.Calendar.from_ical(call.files["document"]).walk("VEVENT")[0]
    assert event.decoded("dtstart") == slot.start_at
    # The file comes first, then the words with the reference: what is read last is what to do.
    sent = fake.sent(7301)
    at = next(i for i, m in enumerate(sent) if "document" in m)
    assert booking.reference in sent[at + 1]["text"] and "日历文件" in sent[at + 1]["text"]
    assert fake.requests(ok=False) == []
