"""Persistence: the only package that holds SQL. Repositories return plain dataclasses."""

from storage import migrate
from storage.db import Database, Tx

__all__ = ["Database", "Tx", "migrate"]
