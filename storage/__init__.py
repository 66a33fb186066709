"""Persistence: the only package that holds SQL. Repositories return plain dataclasses.

A turn (`Database.run_turn`) behaves as if it ran alone; invariants are also held by the database (a
unique constraint or one conditional `UPDATE … WHERE … RETURNING`); a turn does no network or file I/O.
`storage.group_commit` explains each rule, with examples.
"""

from storage import migrate
from storage.db import Database, Tx

__all__ = ["Database", "Tx", "migrate"]
