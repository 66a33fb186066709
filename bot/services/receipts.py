"""Receipt codes' hashes, and the limit on wrong codes.

A receipt code is the only way back to an anonymous complaint, so it is stored only as a slow hash:
scrypt keyed by a pepper, 32 random bytes kept in `deployment_secrets` encrypted under the deployment's
secret key. With the database alone a code can be neither recovered nor checked (guessing one means
knowing the pepper); a key rotation re-encrypts the pepper (`storage.keyring.ENCRYPTED`), so codes keep
working. 16 digits are too many to guess, and `ReceiptGuard` makes sure nobody gets to try.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import weakref
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.services.crypto import Keyring

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx

PEPPER_NAME = "receipt_pepper"
PEPPER_BYTES = 32
# Moderate: 16 MB and about 0.1 s of one core per code (80–120 ms measured on a 2-core server), paid
# once per submission and once per follow-up; a guess costs an attacker the same, pepper in hand.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
HASH_BYTES = 32

# The pepper, once opened, per keyring: a process holds one keyring, a test may hold several.
_PEPPERS: weakref.WeakKeyDictionary[Keyring, bytes] = weakref.WeakKeyDictionary()


def receipt_hash(code: str, pepper: bytes) -> str:
    """The stored form of a receipt code: scrypt(code, salt=pepper), hex."""
    digest = hashlib.scrypt(code.encode(), salt=pepper, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES)
    return digest.hex()


async def pepper(app: BotContext, tx: Tx) -> bytes:
    """The deployment's pepper, made (and kept, encrypted) on first use."""
    known = _PEPPERS.get(app.keyring)
    if known is not None:
        return known
    stored = await tx.complaints.secret(PEPPER_NAME)
    if stored is None:
        fresh = base64.b64encode(secrets.token_bytes(PEPPER_BYTES)).decode()
        await tx.complaints.add_secret(PEPPER_NAME, app.keyring.encrypt(fresh))
        stored = await tx.complaints.secret(PEPPER_NAME)
        assert stored is not None
    value = base64.b64decode(app.keyring.decrypt(stored))
    _PEPPERS[app.keyring] = value
    return value


async def hash_code(app: BotContext, tx: Tx, code: str) -> str:
    """`receipt_hash` with the deployment's pepper. The hashing runs beside the event loop (scrypt
    lets go of the interpreter), so other conversations go on meanwhile; it touches no file or network."""
    key = await pepper(app, tx)
    return await asyncio.to_thread(receipt_hash, code, key)


# -- wrong codes ---------------------------------------------------------------------------------------

WINDOW = timedelta(minutes=15)
PER_TAG = 5  # wrong codes one caller may send per window
OVERALL = 100  # wrong codes all callers together may send per window: a crowd of callers gets no further


class ReceiptGuard:
    """Counts wrong receipt codes in memory, per caller tag (an opaque per-process tag, never a user
    key) and overall, over a sliding window. Ask `allowed` before checking a code, call `wrong` when
    it matched nothing."""

    def __init__(self, per_tag: int = PER_TAG, overall: int = OVERALL, window: timedelta = WINDOW) -> None:
        self.per_tag = per_tag
        self.overall = overall
        self.window = window
        self._tags: dict[str, deque[datetime]] = {}
        self._all: deque[datetime] = deque()

    def _prune(self, times: deque[datetime], now: datetime) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def allowed(self, tag: str, now: datetime) -> bool:
        self._prune(self._all, now)
        if len(self._all) >= self.overall:
            return False
        times = self._tags.get(tag)
        if times is None:
            return True
        self._prune(times, now)
        if not times:
            del self._tags[tag]
            return True
        return len(times) < self.per_tag

    def wrong(self, tag: str, now: datetime) -> None:
        self._all.append(now)
        self._tags.setdefault(tag, deque()).append(now)
        if len(self._tags) > 2 * self.overall:
            # Tags whose every mistake has aged out: forgotten, so the map stays as small as the window.
            for stale in [t for t, times in self._tags.items() if not times or times[-1] <= now - self.window]:
                del self._tags[stale]

    def remaining(self, tag: str, now: datetime) -> int:
        """How many more wrong codes this tag may send now."""
        if not self.allowed(tag, now):
            return 0
        times = self._tags.get(tag, ())
        return min(self.per_tag - len(times), self.overall - len(self._all))


def guard_of(app: BotContext) -> ReceiptGuard:
    """The bot's one guard (`BotContext.receipt_guard`), made on first use."""
    guard = getattr(app, "receipt_guard", None)
    if guard is None:
        guard = ReceiptGuard()
        app.receipt_guard = guard  # type: ignore[attr-defined]
    return guard
