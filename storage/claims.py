"""Insurance claims, their history and their documents.

A claim changes state only through `Claims.transition`: one UPDATE whose WHERE names the state it
leaves (and the version the caller saw, when given), so two reviewers, or the CLI and the chat, acting
at once cannot both move it; the one that finds no row back was too late. Which transitions are
allowed is the service's business (`bot.services.claims`); this module only makes each one atomic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.members import Members
from storage.schema import claim_documents, claim_history, claims


@dataclass(frozen=True)
class Claim:
    id: int
    number: str
    member_id: int
    type: str
    incident_date: date
    description: str
    claimed_fen: int
    approved_fen: int | None
    status: str
    version: int
    incomplete: bool
    missing: tuple[str, ...]
    info_note: str | None
    payout_kind: str
    payout_holder_enc: str
    payout_account_enc: str
    id_number_enc: str | None
    reason_code: str | None
    reason_text: str | None
    payment_ref: str | None
    appealed: bool
    assignee: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ClaimEvent:
    id: int
    claim_id: int
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    note: str | None


@dataclass(frozen=True)
class ClaimDoc:
    claim_id: int
    media_id: str
    item: str
    added_at: datetime


NUMBER_PREFIX = "LP"
SUBMITTED = "submitted"  # the state a claim is made in; the others are the service's


def _claim(row: Any) -> Claim:
    m = dict(row._mapping)
    m["missing"] = tuple(json.loads(m["missing"]))
    m["incomplete"] = bool(m["incomplete"])
    m["appealed"] = bool(m["appealed"])
    return Claim(**m)


# Fields a transition may set besides status/version/updated_at; the rest of a claim never changes.
TRANSITION_FIELDS = (
    "approved_fen",
    "reason_code",
    "reason_text",
    "payment_ref",
    "missing",
    "info_note",
    "appealed",
    "assignee",
)

_CREATE = (
    insert(claims)
    .values({c.name: bindparam(c.name) for c in claims.columns if c.name != "id"})
    .returning(*claims.columns)
)
_BY_NUMBER = select(claims).where(claims.c.number == bindparam("number"))
_FOR_MEMBER = (
    select(claims)
    .where(claims.c.member_id == bindparam("member_id"))
    .order_by(claims.c.created_at.desc(), claims.c.id.desc())
)
_QUEUE = (
    select(claims)
    .where(claims.c.status.in_(bindparam("statuses", expanding=True)))
    .order_by(claims.c.created_at, claims.c.id)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_COUNT = select(func.count()).select_from(claims).where(claims.c.status.in_(bindparam("statuses", expanding=True)))
_IN_RANGE = (
    select(claims)
    .where(claims.c.created_at >= bindparam("start"), claims.c.created_at < bindparam("end"))
    .order_by(claims.c.created_at, claims.c.id)
)
_ADD_DOC = insert(claim_documents).values(
    claim_id=bindparam("claim_id"), media_id=bindparam("media_id"), item=bindparam("item"), added_at=bindparam("at")
)
_DOCS = (
    select(claim_documents).where(claim_documents.c.claim_id == bindparam("claim_id")).order_by(claim_documents.c.id)
)
_ADD_EVENT = insert(claim_history).values(
    claim_id=bindparam("claim_id"),
    at=bindparam("at"),
    actor=bindparam("actor"),
    from_status=bindparam("from_status"),
    to_status=bindparam("to_status"),
    note=bindparam("note"),
)
_HISTORY = select(claim_history).where(claim_history.c.claim_id == bindparam("claim_id")).order_by(claim_history.c.id)


def _transition(fields: frozenset[str], versioned: bool) -> Any:
    where = [claims.c.number == bindparam("b_number"), claims.c.status == bindparam("b_from")]
    if versioned:
        where.append(claims.c.version == bindparam("b_version"))
    values: dict[str, Any] = {
        "status": bindparam("b_to"),
        "version": claims.c.version + 1,
        "updated_at": bindparam("b_now"),
    }
    values.update({f: bindparam(f"set_{f}") for f in sorted(fields)})
    return update(claims).where(*where).values(values).returning(*claims.columns)


# One statement per (fields set, versioned or not): built once, on first use, and kept.
_TRANSITIONS: dict[tuple[frozenset[str], bool], Any] = {}


class Claims:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def create(
        self,
        *,
        member_id: int,
        type: str,
        incident_date: date,
        description: str,
        claimed_fen: int,
        missing: Sequence[str],
        payout_kind: str,
        payout_holder_enc: str,
        payout_account_enc: str,
        id_number_enc: str | None,
        now: datetime,
        actor: str,
    ) -> Claim:
        """A new SUBMITTED claim numbered `LP<year>-<6 digits>` from its year's counter, with its first
        history row (from no state)."""
        sequence = await Members(self.conn).next_counter(f"claims:{now.year}")
        values = {
            "number": f"{NUMBER_PREFIX}{now.year}-{sequence:06d}",
            "member_id": member_id,
            "type": type,
            "incident_date": incident_date,
            "description": description,
            "claimed_fen": int(claimed_fen),
            "approved_fen": None,
            "status": SUBMITTED,
            "version": 1,
            "incomplete": bool(missing),
            "missing": json.dumps(list(missing)),
            "info_note": None,
            "payout_kind": payout_kind,
            "payout_holder_enc": payout_holder_enc,
            "payout_account_enc": payout_account_enc,
            "id_number_enc": id_number_enc,
            "reason_code": None,
            "reason_text": None,
            "payment_ref": None,
            "appealed": False,
            "assignee": None,
            "created_at": now,
            "updated_at": now,
        }
        claim = _claim((await self.conn.execute(_CREATE, values)).one())
        await self.record(claim.id, at=now, actor=actor, from_status=None, to_status=SUBMITTED, note=None)
        return claim

    async def by_number(self, number: str) -> Claim | None:
        row = (await self.conn.execute(_BY_NUMBER, {"number": number})).first()
        return _claim(row) if row else None

    async def for_member(self, member_id: int) -> list[Claim]:
        """The member's claims, newest first."""
        return [_claim(r) for r in await self.conn.execute(_FOR_MEMBER, {"member_id": member_id})]

    async def queue(self, statuses: Sequence[str], offset: int, limit: int) -> list[Claim]:
        """Claims in these states, oldest first: the order staff work through them."""
        params = {"statuses": list(statuses), "offset": offset, "limit": limit}
        return [_claim(r) for r in await self.conn.execute(_QUEUE, params)]

    async def count(self, statuses: Sequence[str]) -> int:
        return (await self.conn.execute(_COUNT, {"statuses": list(statuses)})).scalar_one()

    async def add_document(self, claim_id: int, media_id: str, item: str, now: datetime) -> None:
        await self.conn.execute(_ADD_DOC, {"claim_id": claim_id, "media_id": media_id, "item": item, "at": now})

    async def documents(self, claim_id: int) -> list[ClaimDoc]:
        rows = await self.conn.execute(_DOCS, {"claim_id": claim_id})
        return [ClaimDoc(r.claim_id, r.media_id, r.item, r.added_at) for r in rows]

    async def history(self, claim_id: int) -> list[ClaimEvent]:
        rows = await self.conn.execute(_HISTORY, {"claim_id": claim_id})
        return [ClaimEvent(r.id, r.claim_id, r.at, r.actor, r.from_status, r.to_status, r.note) for r in rows]

    async def all_in_month(self, year: int, month: int) -> list[Claim]:
        """Claims submitted in that calendar month (UTC), oldest first."""
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return [_claim(r) for r in await self.conn.execute(_IN_RANGE, {"start": start, "end": end})]

    async def record(
        self, claim_id: int, *, at: datetime, actor: str, from_status: str | None, to_status: str, note: str | None
    ) -> None:
        """A history row; `transition` writes its own, this is for notes that change no state."""
        values = {
            "claim_id": claim_id,
            "at": at,
            "actor": actor,
            "from_status": from_status,
            "to_status": to_status,
            "note": note,
        }
        await self.conn.execute(_ADD_EVENT, values)

    async def transition(
        self,
        number: str,
        from_status: str,
        to_status: str,
        *,
        now: datetime,
        actor: str,
        note: str | None = None,
        expected_version: int | None = None,
        **changes: Any,
    ) -> Claim | None:
        """Move the claim from `from_status` to `to_status` (setting `changes`, fields of
        TRANSITION_FIELDS) and record it; None when it is not in `from_status` (or not at
        `expected_version`) any more: someone else moved it first."""
        unknown = set(changes) - set(TRANSITION_FIELDS)
        if unknown:
            raise ValueError(f"not a field a transition sets: {sorted(unknown)}")
        key = (frozenset(changes), expected_version is not None)
        stmt = _TRANSITIONS.get(key)
        if stmt is None:
            stmt = _TRANSITIONS[key] = _transition(*key)
        params: dict[str, Any] = {"b_number": number, "b_from": from_status, "b_to": to_status, "b_now": now}
        if expected_version is not None:
            params["b_version"] = expected_version
        for f, v in changes.items():
            params[f"set_{f}"] = json.dumps(list(v)) if f == "missing" else v
        row = (await self.conn.execute(stmt, params)).first()
        if row is None:
            return None
        claim = _claim(row)
        await self.record(claim.id, at=now, actor=actor, from_status=from_status, to_status=to_status, note=note)
        return claim
