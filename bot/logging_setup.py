"""How the bot's logging is set up, in one place for every entry point.

Our own loggers never carry message text, names or phone numbers. Third-party database loggers do at
DEBUG: aiosqlite logs every call with its arguments (the SQL and its parameters, so a member's name
as it is inserted), SQLAlchemy's engine and pool loggers log parameters at INFO/DEBUG, asyncpg and
Alembic log statements. They are held at WARNING whatever level is asked for, so GIGUNION_LOG_LEVEL=DEBUG
is safe to turn on in production. Only `GIGUNION_UNSAFE_SQL_LOG=1` lets them through, for a developer
on test data: it writes personal data into the logs.

Only the standard library is imported here: every `gigunion` command imports this before its help.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

UNSAFE_SQL_LOG = "GIGUNION_UNSAFE_SQL_LOG"
# Each logs SQL, its parameters or rows below WARNING; their children (sqlalchemy.engine.Engine…)
# inherit the level. (SQLAlchemy's `echo=True` would set a child's own level: the bot never uses it.)
SQL_LOGGERS = ("aiosqlite", "sqlalchemy", "asyncpg", "alembic")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def unsafe_sql_log(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(UNSAFE_SQL_LOG, "").strip().lower() in ("1", "true", "yes")


def quiet_sql_loggers(env: Mapping[str, str] | None = None) -> None:
    """Hold the database libraries' loggers at WARNING, unless the unsafe switch is set."""
    level = logging.NOTSET if unsafe_sql_log(env) else logging.WARNING
    for name in SQL_LOGGERS:
        logging.getLogger(name).setLevel(level)


def configure_logging(level: str, env: Mapping[str, str] | None = None) -> None:
    """The root logger at `level` on stderr, with the SQL loggers kept quiet."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    quiet_sql_loggers(env)
