"""The outbox on Telegram: the deliverer against the fake Bot API, driven by the outbox sender on a
clock the test moves (no sleeping, nothing timed)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.engine.messages import OutButton, Outgoing
from bot.handlers.telegram import build_application
from bot.handlers.telegram_render import Renderer
from bot.services.outbox import OutboxSender, enqueue
from bot.services.telegram_delivery import TelegramDeliverer
from tests.chat import Chat, join

# PTB itself warns when it builds a RetryAfter (its attribute is moving from int to timedelta).
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


class Clock:
    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.at = app.now()
        app.now = lambda: self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
async def outbox(bot, settings):  # type: ignore[no-untyped-def]
    """The sender with the Telegram deliverer, run by hand; the clock is the test's."""
    app, _ = bot
    application = build_application(settings, polling=False)
    async with application:
        # Pacing per chat is the limiter's real-time job; these tests are about outcomes.
        deliverer = TelegramDeliverer(Renderer(application.bot), per_chat_per_second=1000)
        yield app, OutboxSender(app, deliverer, base_backoff=1.0), Clock(app)


async def queue(app, user_key: str, *texts: str) -> list[int]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return [await enqueue(tx, user_key, Outgoing(text), app.now()) for text in texts]


async def status(app, item_id: int) -> str | None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.outbox.status_of(item_id)


async def test_delivers_text_with_buttons(outbox, fake) -> None:  # type: ignore[no-untyped-def]
    app, sender, _ = outbox
    async with app.db.transaction() as tx:
        item = await enqueue(tx, "telegram:42", Outgoing("理赔有结果了", (OutButton("查看", "0a|see"),)), app.now())
    assert await sender.run_once() == 1
    assert await status(app, item) == "sent"
    [call] = fake.requests("sendMessage")
    assert call.params["chat_id"] == 42
    assert call.params["reply_markup"]["inline_keyboard"] == [[{"text": "查看", "callback_data": "0a|see"}]]


async def test_retry_after_is_honoured(outbox, fake) -> None:  # type: ignore[no-untyped-def]
    app, sender, clock = outbox
    [item] = await queue(app, "telegram:43", "活动通知")
    fake.fail("sendMessage", 429, retry_after=7)
    assert await sender.run_once() == 1
    assert await status(app, item) == "pending"
    clock.advance(6)
    assert await sender.run_once() == 0  # Telegram said 7 seconds: not yet
    clock.advance(1)
    assert await sender.run_once() == 1
    assert await status(app, item) == "sent"
    assert [c.status for c in fake.requests("sendMessage")] == [429, 200]


async def test_blocked_user_is_marked_unreachable_and_not_retried(outbox, fake, bot) -> None:  # type: ignore[no-untyped-def]
    app, sender, clock = outbox
    await join(Chat(bot[1], user="44", channel="telegram"))
    [item] = await queue(app, "telegram:44", "您的理赔已受理")
    fake.fail("sendMessage", 403)
    assert await sender.run_once() == 1
    assert await status(app, item) == "unreachable"
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key("telegram:44")
        [identity] = await tx.members.identities(member.id)
    assert identity.unreachable
    clock.advance(3600)
    assert await sender.run_once() == 0
    assert len(fake.requests("sendMessage")) == 1


async def test_a_burst_of_server_errors_loses_nothing(outbox, fake) -> None:  # type: ignore[no-untyped-def]
    app, sender, clock = outbox
    texts = [f"第{i}条通知" for i in range(6)]
    items = []
    for i, text in enumerate(texts):
        items += await queue(app, f"telegram:{100 + i % 3}", text)
    fake.fail("sendMessage", 500, times=4)
    fake.fail("sendMessage", 502, times=2)
    rounds = 0
    while any([await status(app, i) != "sent" for i in items]):
        rounds += 1
        assert rounds < 10
        await sender.run_once()
        clock.advance(60)  # past any backoff
    delivered = [c.params["text"] for c in fake.requests("sendMessage", ok=True)]
    assert sorted(delivered) == sorted(texts)  # each once, none lost
    assert len(fake.requests("sendMessage", ok=False)) == 6


async def test_network_failure_backs_off(outbox, fake) -> None:  # type: ignore[no-untyped-def]
    app, sender, clock = outbox
    [item] = await queue(app, "telegram:45", "提醒")
    fake.fail("sendMessage", 500, times=2)
    await sender.run_once()  # attempt 1 fails: due again after 1 s
    clock.advance(1)
    await sender.run_once()  # attempt 2 fails: due again after 2 s
    clock.advance(1)
    assert await sender.run_once() == 0
    clock.advance(1)
    assert await sender.run_once() == 1
    assert await status(app, item) == "sent"


async def test_image_goes_first_then_the_text(outbox, fake) -> None:  # type: ignore[no-untyped-def]
    app, sender, _ = outbox
    async with app.db.transaction() as tx:
        await enqueue(tx, "telegram:46", Outgoing("会员证", image=b"\x89PNG fake"), app.now())
    await sender.run_once()
    assert [c.method for c in fake.calls if c.method.startswith("send")] == ["sendPhoto", "sendMessage"]
    assert fake.requests("sendPhoto")[0].files["photo"] == b"\x89PNG fake"
