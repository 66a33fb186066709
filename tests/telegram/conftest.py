"""For the Telegram tests: a fake Bot API on 127.0.0.1, and settings that point the bot at it."""

from collections.abc import AsyncIterator

import pytest

from tests.fakes.telegram_api import TOKEN, FakeTelegram
from tests.fakes.telegram_harness import SECRET, fake_api


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with fake_api() as f:
        yield f


@pytest.fixture
def settings(make_settings, fake: FakeTelegram):  # type: ignore[no-untyped-def]
    return make_settings(telegram_token=TOKEN, telegram_api_url=fake.api_url, telegram_webhook_secret=SECRET)
