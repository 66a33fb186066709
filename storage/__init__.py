"""Persistence: the only package that holds SQL. Repositories return plain dataclasses.

A turn (`Database.run_turn`) behaves as if it ran alone; invariants are also held by the database (a
unique constraint or one conditional `UPDATE … WHERE … RETURNING`); a turn does no network or file I/O.
`storage.group_commit` explains each rule, with examples.
"""

# `storage.migrate` (Alembic: a fifth of a second to import) is left out: `from storage import migrate`
# imports it where it is needed, so commands that only read start without it.
from storage.db import Database, Tx

__all__ = ["Database", "Tx"]
