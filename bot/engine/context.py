"""Everything a running bot shares across turns: settings, database, keys, locale, flows, locks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.config import Settings, UnionProfile
from bot.engine.flow import Flow
from bot.engine.locks import UserLocks
from bot.locale import Locale
from bot.services.crypto import Keyring
from storage import Database


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class BotContext:
    settings: Settings
    db: Database
    keyring: Keyring
    locale: Locale
    flows: dict[str, Flow]
    locks: UserLocks = field(default_factory=UserLocks)
    now: Callable[[], datetime] = utcnow

    @property
    def profile(self) -> UnionProfile:
        return self.settings.profile

    def flow_for_command(self, word: str) -> Flow | None:
        return next((f for f in self.flows.values() if word in f.commands), None)

    def flow_for_words(self, text: str) -> Flow | None:
        folded = text.strip().casefold()
        return next((f for f in self.flows.values() if folded in f.words), None)
