"""What kind of database failure an error is, told by the driver's own error code, never its message.

A fault is the database refusing work that was correct (a read-only file, a full disk, a damaged file,
a server that cannot be reached): the operator has something to fix and the user can only wait. Errors
that are not faults (a broken constraint, bad SQL) are bugs and classify as None.

The code comes from sqlite3 (`sqlite_errorcode`, Python 3.11+), PostgreSQL (`sqlstate`) or the operating
system (`errno`). Messages are left alone: SQLite and PostgreSQL quote statement values in them.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

READ_ONLY = "read-only"
LOCKED = "locked"
CORRUPT = "corrupt"
DISK_FULL = "disk full"
IO = "I/O error"
CANNOT_OPEN = "cannot open"
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Fault:
    kind: str  # one of the names above
    code: str  # the driver's code, for the log: SQLITE_READONLY, 53100, ENOSPC


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE = {
    sqlite3.SQLITE_READONLY: READ_ONLY,
    sqlite3.SQLITE_BUSY: LOCKED,
    sqlite3.SQLITE_LOCKED: LOCKED,
    sqlite3.SQLITE_PROTOCOL: LOCKED,
    sqlite3.SQLITE_CORRUPT: CORRUPT,
    sqlite3.SQLITE_NOTADB: CORRUPT,
    sqlite3.SQLITE_FULL: DISK_FULL,
    sqlite3.SQLITE_IOERR: IO,
    sqlite3.SQLITE_CANTOPEN: CANNOT_OPEN,
    sqlite3.SQLITE_PERM: CANNOT_OPEN,
    sqlite3.SQLITE_AUTH: CANNOT_OPEN,
}
# PostgreSQL's SQLSTATEs, whole codes first, then by class (the first two characters).
_SQLSTATE = {
    "25006": READ_ONLY,  # read_only_sql_transaction (a standby, or default_transaction_read_only)
    "55P03": LOCKED,  # lock_not_available
    "55006": LOCKED,  # object_in_use
    "57014": LOCKED,  # query_canceled: a statement or lock timeout
    "53100": DISK_FULL,
    "58030": IO,
    "XX001": CORRUPT,  # data_corrupted
    "XX002": CORRUPT,  # index_corrupted
    "3D000": CANNOT_OPEN,  # no such database
    "57P01": UNREACHABLE,  # admin_shutdown
    "57P02": UNREACHABLE,  # crash_shutdown
    "57P03": UNREACHABLE,  # cannot_connect_now
}
_SQLSTATE_CLASS = {"08": UNREACHABLE, "28": CANNOT_OPEN, "53": UNREACHABLE}
_ERRNO = {
    errno.EROFS: READ_ONLY,
    errno.EACCES: CANNOT_OPEN,
    errno.EPERM: CANNOT_OPEN,
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EIO: IO,
}


def classify(error: BaseException) -> Fault | None:
    """The fault behind `error` (SQLAlchemy's wrapper, the driver's error, or what caused it), if any."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        e = pending.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        fault = _own(e)
        if fault is not None:
            return fault
        pending += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return None


def _own(e: BaseException) -> Fault | None:
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        if code is None:
            return None
        kind = _SQLITE.get(code & 0xFF)
        return Fault(kind, getattr(e, "sqlite_errorname", str(code))) if kind else None
    state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
    if isinstance(state, str) and len(state) == 5:
        kind = _SQLSTATE.get(state) or _SQLSTATE_CLASS.get(state[:2])
        return Fault(kind, state) if kind else None
    if isinstance(e, ConnectionError | TimeoutError):
        return Fault(UNREACHABLE, type(e).__name__)
    if isinstance(e, OSError) and e.errno in _ERRNO:
        return Fault(_ERRNO[e.errno], errno.errorcode.get(e.errno, str(e.errno)))
    return None
