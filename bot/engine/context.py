"""Everything a running bot shares across turns: settings, database, keys, locale, flows, locks."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.config import Settings, UnionProfile
from bot.engine.flow import Flow
from bot.engine.locks import UserLocks
from bot.locale import Locale
from bot.services.crypto import Keyring
from bot.services.media import Fetcher, LocalFiles
from bot.services.receipts import ReceiptGuard
from storage import Database

if TYPE_CHECKING:
    from bot.services.outbox import Deliverer


def utcnow() -> datetime:
    return datetime.now(UTC)


def _local_fetchers() -> dict[str, Fetcher]:
    # The console's files are on this machine; each platform channel adds its own fetcher as it starts.
    return {"console": LocalFiles()}


@dataclass
class BotContext:
    settings: Settings
    db: Database
    keyring: Keyring
    locale: Locale
    flows: dict[str, Flow]
    locks: UserLocks = field(default_factory=UserLocks)
    now: Callable[[], datetime] = utcnow
    # Per channel, how a sent file's bytes are fetched before its turn (see bot.services.media).
    media_fetchers: dict[str, Fetcher] = field(default_factory=_local_fetchers)
    # Per running channel, how this process delivers a message to one of its users: filled by each
    # channel as it starts, so a job this process runs (a broadcast) can deliver (see bot.services.outbox).
    deliverers: dict[str, Deliverer] = field(default_factory=dict)
    # Wrong receipt codes, counted in memory by anonymous tag and overall (bot.services.receipts).
    receipt_guard: ReceiptGuard = field(default_factory=ReceiptGuard)

    @property
    def profile(self) -> UnionProfile:
        return self.settings.profile

    def flow_for_command(self, word: str) -> Flow | None:
        return next((f for f in self.flows.values() if word in f.commands), None)

    def flow_for_words(self, text: str) -> Flow | None:
        folded = text.strip().casefold()
        shaped = unicodedata.normalize("NFKC", text).strip().casefold()
        return next(
            (f for f in self.flows.values() if folded in f.words or any(p.fullmatch(shaped) for p in f.patterns)),
            None,
        )
