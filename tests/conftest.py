"""Shared fixtures: a bot on a real SQLite file in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.runtime import running_bot


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    async with running_bot(settings) as pair:
        yield pair


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings on this test's database with some fields changed."""

    def make(**changes) -> Settings:  # type: ignore[no-untyped-def]
        base = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}", secret_key="test-secret-key")
        return replace(base, **changes)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings()
