"""What the WeChat tests share: the fake WeChat API on 127.0.0.1, and settings that point the bot at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.wechat_api import FakeWeChatApi, fake_wechat_api
from tests.fakes.wechat_push import wechat_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChatApi]:
    async with fake_wechat_api() as api:
        yield api


@pytest.fixture
def settings(make_settings, fake):  # type: ignore[no-untyped-def]
    return wechat_settings(make_settings, fake.base)
