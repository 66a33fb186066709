"""The secret key fails closed: read and checked at every start, made only for a new, empty database,
never replaced silently.

Phone numbers are encrypted, looked up and turned into card codes under this key. A bot that started
with another key would find no member by phone, call genuine cards fake and let the same phone join
twice; so the database keeps the key's fingerprint, and a start whose key does not match it stops with
a message saying which key is missing or different.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Settings
from bot.errors import ConfigProblem, KeyProblem
from bot.services.crypto import Keyring
from storage import Database
from storage.keyring import ENCRYPTED, KeyringRepo
from storage.members import UNLINKED_PHONE

# What `new_key` makes has 256 bits; a key given by hand must be as hard to guess.
MIN_BITS = 256
# "aaaa…" is long, not strong.
MIN_DISTINCT = 8
_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=")
ENV_NAME = "GIGUNION_SECRET_KEY (or secret_key in the config file)"


def new_key() -> str:
    return secrets.token_urlsafe(32)


def estimated_bits(key: str) -> float:
    """At most what a key of this length drawn from its alphabet can hold."""
    chars = set(key)
    per_char = 4.0 if chars <= _HEX else 6.0 if chars <= _BASE64 else math.log2(94)
    return len(key) * per_char


def checked(text: str, where: str) -> str:
    """The key in `text`, or KeyProblem saying what is wrong with it."""
    key = text.strip()
    if not key:
        raise KeyProblem(f"The secret key in {where} is empty. Restore it from your backup (never make a new one).")
    if any(not ch.isascii() or not ch.isprintable() or ch.isspace() for ch in key):
        raise KeyProblem(
            f"The secret key in {where} is malformed: it must be one line of printable ASCII with no spaces."
        )
    if estimated_bits(key) < MIN_BITS or len(set(key)) < MIN_DISTINCT:
        raise KeyProblem(
            f"The secret key in {where} is too short or too simple ({len(key)} characters): it needs 256 bits,"
            " e.g. 43 characters of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return key


def configured_key(settings: Settings) -> tuple[str | None, str]:
    """The key the settings give (checked) and where it was found; None when there is none yet."""
    if settings.secret_key is not None:
        return checked(settings.secret_key, ENV_NAME), ENV_NAME
    path = settings.key_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, str(path)
    except OSError as e:
        raise KeyProblem(f"The key file {path} cannot be read ({e.strerror}). Check its owner and mode.") from e
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise KeyProblem(f"The secret key in {path} is malformed: it is not plain ASCII text.") from e
    return checked(text, str(path)), str(path)


def write_key_file(path: Path, key: str) -> None:
    """`key` into a new file readable by its owner only; an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
        f.flush()
        os.fsync(f.fileno())


def database_name(settings: Settings) -> str:
    path = settings.sqlite_path()
    if path is not None:
        return str(path)
    from sqlalchemy import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _missing(settings: Settings, where: str) -> KeyProblem:
    return KeyProblem(
        f"The secret key is missing: no key file at {where}, and the database {database_name(settings)} was"
        " written under a key.\nPut that key file back from your backup (or set GIGUNION_SECRET_KEY to it);"
        " a new key would open none of its data, so none is made."
    )


def _different(settings: Settings, where: str) -> KeyProblem:
    return KeyProblem(
        f"The secret key in {where} is not the one the database {database_name(settings)} was written under.\n"
        "Put back the key that belongs with this database (from your backup), or point GIGUNION_HOME at its folder."
    )


async def open_keyring(settings: Settings, db: Database, *, may_create: bool, read_only: bool = False) -> Keyring:
    """The keyring for `db`, or KeyProblem. A key is made (`may_create`) only for a database that holds
    no fingerprint and no member; the first start records the key's fingerprint (not on `read_only`)."""
    key, where = configured_key(settings)
    # The engine's own connections, as migrations use: the unit of work's connection stays free for the
    # caller, who may not want one (SQLite's pool holds a single connection).
    async with db.engine.begin() as conn:
        repo = KeyringRepo(conn)
        recorded = await repo.get()
        sample = None if recorded else await repo.one_protected_value()
    if recorded is not None and not read_only and _interrupted_rotation(settings, recorded.fingerprint):
        key, where = configured_key(settings)
    if key is None:
        if recorded is not None or sample is not None or not may_create:
            raise _missing(settings, where)
        key = new_key()
        try:
            write_key_file(settings.key_file(), key)
        except FileExistsError:  # another process starting at the same moment made it first
            key, where = configured_key(settings)
            assert key is not None
        except OSError as e:
            raise KeyProblem(f"The key file {where} cannot be written ({e.strerror}). Check the folder.") from e
    keyring = Keyring(key)
    if recorded is not None:
        if recorded.fingerprint != keyring.fingerprint():
            raise _different(settings, where)
        return keyring
    if sample is not None:
        # A database from before fingerprints: the key is the right one if it opens a member's phone.
        try:
            keyring.decrypt(sample)
        except ValueError:
            raise _different(settings, where) from None
    if not read_only:
        async with db.engine.begin() as conn:
            adopted = await KeyringRepo(conn).adopt(keyring.fingerprint(), datetime.now(UTC))
        if adopted != keyring.fingerprint():
            raise _different(settings, where)
    return keyring


# -- rotation ----------------------------------------------------------------------------------------

NEW_SUFFIX = ".new"  # the next key, written before the rotation's transaction
OLD_SUFFIX = ".old"  # the key being replaced, kept until the next one is in place


@dataclass(frozen=True)
class Rotation:
    members: int  # phones re-encrypted and re-hashed, card codes reissued
    conversations: int  # conversations whose encrypted answers were re-encrypted
    key_file: Path


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _private_copy(path: Path, text: str) -> None:
    """`text` into `path` (replaced if there), readable by its owner only, on disk before this returns."""
    path.unlink(missing_ok=True)
    write_key_file(path, text)


def _reencrypt(data: str, old: Keyring, new: Keyring) -> str | None:
    """A conversation's stored data with every encrypted answer (`…_enc`) re-encrypted; None if it has none."""
    values = json.loads(data)
    changed = False
    for name, value in values.items():
        if name.endswith("_enc") and isinstance(value, str):
            try:
                values[name] = new.reencrypt(value, old)
            except ValueError:
                values[name] = None  # already unreadable: it stays unreadable, without a stale token
            changed = True
    return json.dumps(values, ensure_ascii=False) if changed else None


async def rotate(settings: Settings, db: Database, old: Keyring, now: datetime) -> Rotation:
    """Everything written under `old` rewritten under a new key in one transaction: phones re-encrypted,
    their lookup hashes recomputed, card codes reissued (a rotation means the old key may be known, and
    whoever knows it can make the old codes), encrypted answers in conversations re-encrypted, the
    fingerprint moved and the rotation audited. The new key file replaces the old one only once that
    has committed; until then the next key waits in `gigunion.key.new` and the current one is copied to
    `gigunion.key.old`, so a crash at any point leaves the database under a key that is on disk (a start
    after a crash between the commit and the swap finishes the swap: see `open_keyring`)."""
    if settings.secret_key is not None:
        raise ConfigProblem(
            f"The key comes from {ENV_NAME}, which this command cannot change.\n"
            "Unset it and keep the key in the key file (`gigunion where` shows where) to rotate it."
        )
    path = settings.key_file()
    key = new_key()
    new = Keyring(key)
    _private_copy(_sibling(path, OLD_SUFFIX), path.read_text("ascii").strip())
    _private_copy(_sibling(path, NEW_SUFFIX), key)
    reencrypted = 0
    async with db.transaction() as tx:
        repo = KeyringRepo(tx.conn)
        people = await repo.members_protected()
        for m in people:
            phone = old.decrypt(m.phone_enc)
            # A number kept unlinked (typed, and already another member's) stays unlinked for staff.
            phone_hash = m.phone_hash if m.phone_hash.startswith(UNLINKED_PHONE) else new.lookup_hash(phone)
            await repo.rewrite_member(m.id, new.encrypt(phone), phone_hash, new.card_code(m.member_number))
        for table in ENCRYPTED:  # claims' payout details, booking topics
            for row_id, values in await repo.encrypted_rows(table):
                fresh = {c: new.reencrypt(v, old) if v else v for c, v in values.items()}
                await repo.rewrite_encrypted(table, row_id, fresh)
        for user_key, data in await repo.sessions_with_data():
            rewritten = _reencrypt(data, old, new)
            if rewritten is not None:
                await repo.rewrite_session_data(user_key, rewritten)
                reencrypted += 1
        if not await repo.replace(old.fingerprint(), new.fingerprint(), now):
            raise KeyProblem("The database's key changed while rotating; nothing was changed.")
        await tx.audit.record(now, "cli", "key.rotated", None)
    _finish_swap(path)
    return Rotation(len(people), reencrypted, path)


def _finish_swap(path: Path) -> None:
    os.replace(_sibling(path, NEW_SUFFIX), path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself on disk before the old key goes
    finally:
        os.close(folder)
    _sibling(path, OLD_SUFFIX).unlink(missing_ok=True)


def _interrupted_rotation(settings: Settings, recorded: str) -> bool:
    """A rotation committed but stopped before its key file was swapped in: finish it."""
    if settings.secret_key is not None:
        return False
    waiting = _sibling(settings.key_file(), NEW_SUFFIX)
    try:
        key = checked(waiting.read_text("ascii"), str(waiting))
    except (OSError, UnicodeDecodeError, KeyProblem):
        return False
    if Keyring(key).fingerprint() != recorded:
        return False
    _finish_swap(settings.key_file())
    return True
