"""Shared fixtures: a bot on a real SQLite file in a temporary folder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.runtime import running_bot


def gigunion_env(folder: Path, database: str = "gigunion.db", **settings: str) -> dict[str, str]:
    """The environment of a `gigunion` process started by a test: none of the caller's GIGUNION_ settings,
    its data folder and database in `folder`, quiet logs, and `settings` as GIGUNION_<NAME>."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")}
    e |= {"GIGUNION_HOME": str(folder), "GIGUNION_DATABASE_URL": f"sqlite+aiosqlite:///{folder / database}"}
    e["GIGUNION_LOG_LEVEL"] = "WARNING"
    return e | {f"GIGUNION_{name.upper()}": value for name, value in settings.items()}


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test, nor any process it starts (they copy this environment), may touch the real user data
    folder: the platform's data folder is resolved from these, and every GIGUNION_ setting is cleared."""
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for name in [k for k in os.environ if k.startswith("GIGUNION_")]:
        monkeypatch.delenv(name)
    return home


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    async with running_bot(settings) as pair:
        yield pair


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings on this test's database with some fields changed."""

    def make(**changes) -> Settings:  # type: ignore[no-untyped-def]
        base = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}",
            secret_key="test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            home=str(tmp_path),
        )
        return replace(base, **changes)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings()
