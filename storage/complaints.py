"""Anonymous complaints, their threads and history, and the anonymous review figures reports are made of.

Nothing here names a person: the rows hold a random id, the receipt code's hash, what the complaint is
about, its text encrypted, and days (never times). A complaint changes state only through
`Complaints.transition`: one UPDATE whose WHERE names the state and the version the caller saw, so
two staff (or the CLI and the chat) acting at once cannot both move it; the one that gets no row back
was too late. Which moves are allowed is the service's business (`bot.services.complaints`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_ignoring_conflicts, per_dialect
from storage.schema import complaint_history, complaint_messages, complaints, deployment_secrets, review_scores, reviews

NEW = "new"  # the state a complaint is made in; the others are the service's
CLOSED = "closed"
# Thirty characters that cannot be confused when read or typed (no 0/o, 1/l/i), lower case so a
# shell or a phone keyboard leaves them alone; twelve of them are 58 random bits.
_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ID_LENGTH = 12


def new_id() -> str:
    """A complaint's id: random, so its order says nothing of when it came (unlike a counter or a
    time-based id, which could be matched against other tables' times)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def _row_id() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Complaint:
    id: str
    target_kind: str
    target: str | None
    category: str
    status: str
    version: int
    team: str | None
    outcome: str | None
    description_enc: str
    review_id: str | None
    submitted_on: date
    updated_on: date
    closed_on: date | None


@dataclass(frozen=True)
class StoredMessage:
    id: str
    complaint_id: str
    seq: int
    author: str  # worker, union
    body_enc: str
    on_day: date


@dataclass(frozen=True)
class HistoryEntry:
    complaint_id: str
    seq: int
    from_status: str | None
    to_status: str
    note: str | None  # a category, team or outcome id
    on_day: date


@dataclass(frozen=True)
class Review:
    id: str
    period: str
    target_kind: str
    target: str | None
    category: str
    first_answer_days: int | None
    closed: bool


_COMPLAINT_COLUMNS = [c for c in complaints.columns if c.name != "receipt_hash"]


def _complaint(row: Any) -> Complaint:
    return Complaint(**{c.name: row._mapping[c.name] for c in _COMPLAINT_COLUMNS})


def _message(row: Any) -> StoredMessage:
    m = row._mapping
    return StoredMessage(m["id"], m["complaint_id"], m["seq"], m["author"], m["body_enc"], m["on_day"])


def _review(row: Any) -> Review:
    m = row._mapping
    return Review(
        m["id"], m["period"], m["target_kind"], m["target"], m["category"], m["first_answer_days"], bool(m["closed"])
    )


_CREATE = (
    insert(complaints).values({c.name: bindparam(c.name) for c in complaints.columns}).returning(*_COMPLAINT_COLUMNS)
)
_GET = select(*_COMPLAINT_COLUMNS).where(complaints.c.id == bindparam("id"))
_BY_RECEIPT = select(*_COMPLAINT_COLUMNS).where(complaints.c.receipt_hash == bindparam("receipt_hash"))
# Oldest first, the order staff work through them; the id only breaks ties within a day.
_QUEUE = (
    select(*_COMPLAINT_COLUMNS)
    .where(complaints.c.status.in_(bindparam("statuses", expanding=True)))
    .order_by(complaints.c.updated_on, complaints.c.submitted_on, complaints.c.id)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_COUNTS = select(complaints.c.status, func.count()).group_by(complaints.c.status)
_ADD_MESSAGE = insert(complaint_messages).values({c.name: bindparam(c.name) for c in complaint_messages.columns})
_THREAD = (
    select(complaint_messages)
    .where(complaint_messages.c.complaint_id == bindparam("complaint_id"))
    .order_by(complaint_messages.c.seq)
)
_ADD_HISTORY = insert(complaint_history).values({c.name: bindparam(c.name) for c in complaint_history.columns})
_HISTORY = (
    select(complaint_history)
    .where(complaint_history.c.complaint_id == bindparam("complaint_id"))
    .order_by(complaint_history.c.seq)
)
_ADD_REVIEW = insert(reviews).values({c.name: bindparam(c.name) for c in reviews.columns})
_ADD_SCORE = insert(review_scores).values({c.name: bindparam(c.name) for c in review_scores.columns})
_GET_REVIEW = select(reviews).where(reviews.c.id == bindparam("id"))
_REVIEW_CATEGORY = update(reviews).where(reviews.c.id == bindparam("r_id")).values(category=bindparam("r_category"))
# Only the first answer counts: a later reply finds the column set and changes nothing.
_FIRST_ANSWER = (
    update(reviews)
    .where(reviews.c.id == bindparam("r_id"), reviews.c.first_answer_days.is_(None))
    .values(first_answer_days=bindparam("r_days"))
)
_REVIEW_CLOSED = update(reviews).where(reviews.c.id == bindparam("r_id")).values(closed=True)
_CLOSED_BEFORE = (
    select(complaints.c.id)
    .where(complaints.c.status == CLOSED, complaints.c.closed_on < bindparam("before"))
    .order_by(complaints.c.closed_on, complaints.c.id)
    .limit(bindparam("limit"))
)
_MESSAGE_IDS = select(complaint_messages.c.complaint_id, complaint_messages.c.id).where(
    complaint_messages.c.complaint_id.in_(bindparam("ids", expanding=True))
)
_DELETE_MESSAGES = delete(complaint_messages).where(
    complaint_messages.c.complaint_id.in_(bindparam("ids", expanding=True))
)
_DELETE_HISTORY = delete(complaint_history).where(
    complaint_history.c.complaint_id.in_(bindparam("ids", expanding=True))
)
# A complaint closed again meanwhile is no longer due; one reopened is not deleted.
_DELETE_CLOSED = (
    delete(complaints)
    .where(complaints.c.id.in_(bindparam("ids", expanding=True)), complaints.c.status == CLOSED)
    .returning(complaints.c.id)
)
_SECRET = select(deployment_secrets.c.value_enc).where(deployment_secrets.c.name == bindparam("name"))
# Two processes making the pepper at once: the first insert wins, both then read the same one.
_ADD_SECRET = per_dialect(
    lambda d: insert_ignoring_conflicts(d, deployment_secrets, ["name"]).values(
        name=bindparam("name"), value_enc=bindparam("value_enc")
    )
)

# Fields a transition may set besides status/version/updated_on.
TRANSITION_FIELDS = ("category", "team", "outcome", "closed_on")


def _transition(fields: frozenset[str]) -> Any:
    values: dict[str, Any] = {
        "status": bindparam("b_to"),
        "version": complaints.c.version + 1,
        "updated_on": bindparam("b_day"),
    }
    values.update({f: bindparam(f"set_{f}") for f in sorted(fields)})
    return (
        update(complaints)
        .where(
            complaints.c.id == bindparam("b_id"),
            complaints.c.status == bindparam("b_from"),
            complaints.c.version == bindparam("b_version"),
        )
        .values(values)
        .returning(*_COMPLAINT_COLUMNS)
    )


# One statement per set of fields: built on first use, and kept.
_TRANSITIONS: dict[frozenset[str], Any] = {}


class Complaints:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def create(
        self,
        *,
        receipt_hash: str,
        target_kind: str,
        target: str | None,
        category: str,
        description_enc: str,
        review_id: str | None,
        day: date,
    ) -> Complaint:
        """A NEW complaint under a random id, with its first history row."""
        values = {
            "id": new_id(),
            "receipt_hash": receipt_hash,
            "target_kind": target_kind,
            "target": target,
            "category": category,
            "status": NEW,
            "version": 1,
            "team": None,
            "outcome": None,
            "description_enc": description_enc,
            "review_id": review_id,
            "submitted_on": day,
            "updated_on": day,
            "closed_on": None,
        }
        complaint = _complaint((await self.conn.execute(_CREATE, values)).one())
        await self._record(complaint.id, complaint.version, None, NEW, category, day)
        return complaint

    async def get(self, complaint_id: str) -> Complaint | None:
        row = (await self.conn.execute(_GET, {"id": complaint_id})).first()
        return _complaint(row) if row else None

    async def by_receipt_hash(self, receipt_hash: str) -> Complaint | None:
        row = (await self.conn.execute(_BY_RECEIPT, {"receipt_hash": receipt_hash})).first()
        return _complaint(row) if row else None

    async def queue(self, statuses: Sequence[str], offset: int = 0, limit: int = 50) -> list[Complaint]:
        params = {"statuses": list(statuses), "offset": offset, "limit": limit}
        return [_complaint(r) for r in await self.conn.execute(_QUEUE, params)]

    async def counts(self) -> dict[str, int]:
        """How many complaints are in each state (states with none left out)."""
        return {r[0]: r[1] for r in await self.conn.execute(_COUNTS)}

    async def transition(
        self,
        complaint_id: str,
        from_status: str,
        version: int,
        to_status: str,
        *,
        day: date,
        note: str | None,
        record: bool = True,
        **fields: Any,
    ) -> Complaint | None:
        """Move the complaint from `from_status` at `version` to `to_status` (version + 1), setting
        `fields`; None when it is no longer there in that state at that version. With `record` a
        history row (seq = the new version) says so."""
        unknown = set(fields) - set(TRANSITION_FIELDS)
        if unknown:
            raise ValueError(f"not a transition field: {sorted(unknown)}")
        key = frozenset(fields)
        stmt = _TRANSITIONS.get(key)
        if stmt is None:
            stmt = _TRANSITIONS[key] = _transition(key)
        params = {
            "b_id": complaint_id,
            "b_from": from_status,
            "b_version": version,
            "b_to": to_status,
            "b_day": day,
            **{f"set_{f}": v for f, v in fields.items()},
        }
        row = (await self.conn.execute(stmt, params)).first()
        if row is None:
            return None
        moved = _complaint(row)
        if record:
            await self._record(moved.id, moved.version, from_status, to_status, note, day)
        return moved

    async def add_message(self, complaint_id: str, seq: int, author: str, body_enc: str, day: date) -> StoredMessage:
        values = {
            "id": _row_id(),
            "complaint_id": complaint_id,
            "seq": seq,
            "author": author,
            "body_enc": body_enc,
            "on_day": day,
        }
        await self.conn.execute(_ADD_MESSAGE, values)
        return StoredMessage(**values)

    async def thread(self, complaint_id: str) -> list[StoredMessage]:
        return [_message(r) for r in await self.conn.execute(_THREAD, {"complaint_id": complaint_id})]

    async def history(self, complaint_id: str) -> list[HistoryEntry]:
        rows = await self.conn.execute(_HISTORY, {"complaint_id": complaint_id})
        return [HistoryEntry(r.complaint_id, r.seq, r.from_status, r.to_status, r.note, r.on_day) for r in rows]

    async def _record(
        self, complaint_id: str, seq: int, from_status: str | None, to_status: str, note: str | None, day: date
    ) -> None:
        values = {
            "id": _row_id(),
            "complaint_id": complaint_id,
            "seq": seq,
            "from_status": from_status,
            "to_status": to_status,
            "note": note,
            "on_day": day,
        }
        await self.conn.execute(_ADD_HISTORY, values)

    # -- the anonymous figures ------------------------------------------------------------------------

    async def add_review(
        self, *, period: str, target_kind: str, target: str | None, category: str, scores: Mapping[str, int]
    ) -> Review:
        """A review row (kept after its complaint is deleted) and one score row per indicator rated."""
        review = Review(_row_id(), period, target_kind, target, category, None, False)
        await self.conn.execute(
            _ADD_REVIEW,
            {
                "id": review.id,
                "period": period,
                "target_kind": target_kind,
                "target": target,
                "category": category,
                "first_answer_days": None,
                "closed": False,
            },
        )
        if scores:
            rows = [
                {"review_id": review.id, "indicator": k, "period": period, "target": target, "score": int(v)}
                for k, v in scores.items()
            ]
            await self.conn.execute(_ADD_SCORE, rows)
        return review

    async def review(self, review_id: str) -> Review | None:
        row = (await self.conn.execute(_GET_REVIEW, {"id": review_id})).first()
        return _review(row) if row else None

    async def set_review_category(self, review_id: str, category: str) -> None:
        await self.conn.execute(_REVIEW_CATEGORY, {"r_id": review_id, "r_category": category})

    async def first_answer(self, review_id: str, days: int) -> bool:
        """Record the days to the first answer, unless one is recorded; True when this was the first."""
        return (await self.conn.execute(_FIRST_ANSWER, {"r_id": review_id, "r_days": days})).rowcount > 0

    async def review_closed(self, review_id: str) -> None:
        await self.conn.execute(_REVIEW_CLOSED, {"r_id": review_id})

    # -- retention ------------------------------------------------------------------------------------

    async def closed_before(self, before: date, limit: int = 200) -> list[str]:
        """Ids of complaints closed before `before`, oldest first."""
        return [r.id for r in await self.conn.execute(_CLOSED_BEFORE, {"before": before, "limit": limit})]

    async def message_ids(self, complaint_ids: Sequence[str]) -> dict[str, list[str]]:
        """The ids of each complaint's thread messages (their pictures are owned by the message)."""
        found: dict[str, list[str]] = {}
        if complaint_ids:
            for r in await self.conn.execute(_MESSAGE_IDS, {"ids": list(complaint_ids)}):
                found.setdefault(r.complaint_id, []).append(r.id)
        return found

    async def delete_closed(self, complaint_ids: Sequence[str]) -> list[str]:
        """Delete those of these complaints that are still closed, with their thread and history (not
        their review: its figures stay for the reports). The ids deleted."""
        if not complaint_ids:
            return []
        gone = [r.id for r in await self.conn.execute(_DELETE_CLOSED, {"ids": list(complaint_ids)})]
        if gone:
            # The foreign keys cascade too; said here so a database without them keeps no orphan text.
            await self.conn.execute(_DELETE_MESSAGES, {"ids": gone})
            await self.conn.execute(_DELETE_HISTORY, {"ids": gone})
        return gone

    # -- deployment secrets (the receipt pepper) ------------------------------------------------------

    async def secret(self, name: str) -> str | None:
        """The stored (encrypted) value of a deployment secret, or None."""
        row = (await self.conn.execute(_SECRET, {"name": name})).first()
        return row.value_enc if row else None

    async def add_secret(self, name: str, value_enc: str) -> None:
        """Keep a secret unless one of that name is kept already (then the kept one stands)."""
        await self.conn.execute(_ADD_SECRET(self.conn), {"name": name, "value_enc": value_enc})
