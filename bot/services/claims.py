"""Insurance claims: submitting, the transitions staff and members make, and telling the member.

Every change goes through `move`, which checks it against `ALLOWED` and then makes it with one
conditional statement (`storage.claims.Claims.transition`), so a stale or concurrent decision is
refused whoever makes it (the chat, the CLI, two reviewers at once). Each change is recorded in the
claim's history and announced to the member through the outbox, in their language, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from bot.engine.messages import Outgoing
from bot.services.outbox import enqueue
from bot.validation import parse_yuan  # noqa: F401 (the amount rules, named here for the CLI and flows)
from storage.claims import SUBMITTED, Claim
from storage.members import Member

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx

UNDER_REVIEW, NEEDS_INFO, APPROVED, REJECTED, PAID = "under_review", "needs_info", "approved", "rejected", "paid"
# An action, not a resting state: an APPROVED or REJECTED claim goes back to UNDER_REVIEW, once.
APPEALED = "appealed"
STATUSES = (SUBMITTED, UNDER_REVIEW, NEEDS_INFO, APPROVED, REJECTED, PAID)
ALLOWED: dict[str, frozenset[str]] = {
    SUBMITTED: frozenset({UNDER_REVIEW}),
    UNDER_REVIEW: frozenset({NEEDS_INFO, APPROVED, REJECTED}),
    NEEDS_INFO: frozenset({UNDER_REVIEW}),
    APPROVED: frozenset({PAID, UNDER_REVIEW}),
    REJECTED: frozenset({UNDER_REVIEW}),
    PAID: frozenset(),
}
APPEALABLE = frozenset({APPROVED, REJECTED})
REJECT_REASONS = ("not_covered", "outside_window", "missing_documents", "duplicate", "not_member", "other")
OTHER_DOCUMENT = "other"  # a file sent that is on no checklist line
MEDIA_OWNER = "claim"


class ClaimRefused(Exception):
    """A change that cannot be made. `reason`: "not_found", "not_allowed" (not from this state),
    "moved_meanwhile" (someone changed the claim first), "bad_amount", "already_appealed", and for
    callers that pass what they should not: "bad_reason" (a reject reason not in REJECT_REASONS),
    "no_reference" (paid without a payment reference)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def move(
    tx: Tx,
    app: BotContext,
    number: str,
    to: str,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    approved_fen: int | None = None,
    reason_code: str | None = None,
    payment_ref: str | None = None,
    missing: Sequence[str] | None = None,
    expected_version: int | None = None,
) -> Claim:
    """Move claim `number` to `to` and tell the member; ClaimRefused when it may not be moved so.

    `expected_version` is the version the actor saw: if the claim has changed since, it is refused
    as moved meanwhile even when the move would still be allowed, since the actor decided on what
    is no longer there."""
    claim = await tx.claims.by_number(number)
    if claim is None:
        raise ClaimRefused("not_found")
    if expected_version is not None and claim.version != expected_version:
        raise ClaimRefused("moved_meanwhile")
    if to not in ALLOWED.get(claim.status, frozenset()):
        raise ClaimRefused("not_allowed")
    changes: dict[str, Any] = {}
    if to == UNDER_REVIEW and claim.status in APPEALABLE:
        if claim.appealed:
            raise ClaimRefused("already_appealed")
        changes.update(appealed=True, assignee=actor)
    elif to == UNDER_REVIEW and claim.status == SUBMITTED:
        changes["assignee"] = actor
    elif to == APPROVED:
        if isinstance(approved_fen, bool) or not isinstance(approved_fen, int):
            raise ClaimRefused("bad_amount")
        if not 0 < approved_fen <= claim.claimed_fen:
            raise ClaimRefused("bad_amount")
        changes.update(approved_fen=approved_fen, reason_code=None, reason_text=None)
    elif to == REJECTED:
        if reason_code not in REJECT_REASONS:
            raise ClaimRefused("bad_reason")
        changes.update(reason_code=reason_code, reason_text=note, approved_fen=None)
    elif to == PAID:
        if not payment_ref or not payment_ref.strip():
            raise ClaimRefused("no_reference")
        changes["payment_ref"] = payment_ref.strip()
    elif to == NEEDS_INFO:
        changes.update(missing=tuple(missing or ()), info_note=note)
    moved = await tx.claims.transition(
        number,
        claim.status,
        to,
        now=now,
        actor=actor,
        note=note,
        # Without a version from the caller, the one just read: anything between the read and the
        # UPDATE (a writer outside these turns) makes it a no-op, never a silent overwrite.
        expected_version=claim.version if expected_version is None else expected_version,
        **changes,
    )
    if moved is None:
        raise ClaimRefused("moved_meanwhile")
    event = APPEALED if "appealed" in changes else to
    await notify(tx, app, moved, event, now=now, actor=actor)
    return moved


async def take(tx: Tx, app: BotContext, number: str, *, actor: str, now: datetime) -> Claim:
    """A reviewer takes a SUBMITTED claim into review (and becomes its assignee). A claim another
    reviewer has already taken is refused as moved meanwhile."""
    claim = await tx.claims.by_number(number)
    if claim is None:
        raise ClaimRefused("not_found")
    if claim.status != SUBMITTED:
        raise ClaimRefused("moved_meanwhile" if claim.status == UNDER_REVIEW else "not_allowed")
    return await move(tx, app, number, UNDER_REVIEW, actor=actor, now=now, expected_version=claim.version)


async def decide_from_cli(
    tx: Tx,
    app: BotContext,
    number: str,
    to: str,
    *,
    now: datetime,
    actor: str = "cli",
    note: str | None = None,
    approved_fen: int | None = None,
    reason_code: str | None = None,
    missing: Sequence[str] | None = None,
) -> Claim:
    """A decision (approved, rejected, needs_info) from the command line: a SUBMITTED claim is taken
    into review first, in the same transaction, and both transitions are recorded."""
    claim = await tx.claims.by_number(number)
    if claim is None:
        raise ClaimRefused("not_found")
    if to not in (APPROVED, REJECTED, NEEDS_INFO):
        raise ClaimRefused("not_allowed")
    version = claim.version
    if claim.status == SUBMITTED:
        version = (await take(tx, app, number, actor=actor, now=now)).version
    return await move(
        tx,
        app,
        number,
        to,
        actor=actor,
        now=now,
        note=note,
        approved_fen=approved_fen,
        reason_code=reason_code,
        missing=missing,
        expected_version=version,
    )


async def submit(
    tx: Tx, app: BotContext, member: Member, draft: Mapping[str, Any], *, now: datetime, actor: str
) -> Claim:
    """Make the claim from what the member flow collected (see the module's draft keys in the spec:
    type, incident_date, description, claimed_fen, media, payout_kind, payout_holder_enc,
    payout_account_enc, id_number_enc), link its files and tell the member's other identities."""
    kind = app.profile.claim_type(str(draft["type"]))
    if kind is None:
        raise ValueError(f"no claim type {draft['type']!r} in the union profile")
    claimed = draft["claimed_fen"]
    if isinstance(claimed, bool) or not isinstance(claimed, int) or not 0 < claimed <= kind.cover_limit_fen:
        raise ClaimRefused("bad_amount")
    media = list(draft.get("media") or ())
    claim = await tx.claims.create(
        member_id=member.id,
        type=kind.id,
        incident_date=date.fromisoformat(str(draft["incident_date"])),
        description=str(draft["description"]),
        claimed_fen=claimed,
        missing=_missing(kind.documents, (m["item"] for m in media)),
        payout_kind=str(draft["payout_kind"]),
        payout_holder_enc=str(draft["payout_holder_enc"]),
        payout_account_enc=str(draft["payout_account_enc"]),
        id_number_enc=draft.get("id_number_enc"),
        now=now,
        actor=actor,
    )
    await _attach(tx, claim, media, now)
    await notify(tx, app, claim, SUBMITTED, now=now, actor=actor)
    return claim


def _missing(checklist: Sequence[Any], items: Any) -> tuple[str, ...]:
    have = set(items)
    return tuple(d.id for d in checklist if d.required and d.id not in have)


async def _attach(tx: Tx, claim: Claim, media: Sequence[Mapping[str, str]], now: datetime) -> list[str]:
    """Link each file to the claim and list it; the items of those that could be linked. A file that
    is someone else's or was purged meanwhile is left out rather than listed without its content."""
    added = []
    for m in media:
        if await tx.media.link(m["id"], MEDIA_OWNER, claim.number):
            await tx.claims.add_document(claim.id, m["id"], m.get("item") or OTHER_DOCUMENT, now)
            added.append(m.get("item") or OTHER_DOCUMENT)
    return added


async def add_info(
    tx: Tx,
    app: BotContext,
    number: str,
    member: Member,
    *,
    media: Sequence[Mapping[str, str]] = (),
    answer: str | None = None,
    now: datetime,
    actor: str | None = None,
) -> Claim:
    """The member answers a NEEDS_INFO claim: the files and/or the text answer are added and the
    claim goes back to UNDER_REVIEW, still listing what was asked for and not sent. `actor`: the
    member's user key (default: their member number)."""
    claim = await tx.claims.by_number(number)
    if claim is None or claim.member_id != member.id:
        raise ClaimRefused("not_found")  # another member's claim is no business of this one's
    if claim.status != NEEDS_INFO:
        raise ClaimRefused("not_allowed")
    added = await _attach(tx, claim, media, now)
    still = tuple(item for item in claim.missing if item not in added)
    who = actor or f"member:{member.member_number}"
    moved = await tx.claims.transition(
        number,
        NEEDS_INFO,
        UNDER_REVIEW,
        now=now,
        actor=who,
        note=answer.strip() if answer and answer.strip() else None,
        expected_version=claim.version,
        missing=still,
    )
    if moved is None:
        raise ClaimRefused("moved_meanwhile")
    await notify(tx, app, moved, UNDER_REVIEW, now=now, actor=who)
    return moved


async def notify(tx: Tx, app: BotContext, claim: Claim, event: str, *, now: datetime, actor: str) -> None:
    """Queue `claims.notify_<event>` to each identity of the claim's member, in the language that
    identity chose (else the union's default). The identity that made the change itself is skipped:
    it has just been answered in its chat."""
    profile = app.profile
    kind = profile.claim_type(claim.type)
    for identity in await tx.members.identities(claim.member_id):
        if identity.user_key == actor:
            continue
        session = await tx.sessions.get(identity.user_key)
        lang = session.lang if session and session.lang in app.locale.languages else profile.default_language
        missing = [_document_label(kind, item, lang) for item in claim.missing]
        text = app.locale.text(
            lang,
            f"claims.notify_{event}",
            number=claim.number,
            type=kind.label(lang) if kind else claim.type,
            status=app.locale.text(lang, f"claims.status_{claim.status}"),
            claimed=yuan(claim.claimed_fen),
            approved=yuan(claim.approved_fen) if claim.approved_fen is not None else "",
            reason=app.locale.text(lang, f"claims.reason_{claim.reason_code}") if claim.reason_code else "",
            reason_text=claim.reason_text or "",
            note=claim.info_note or "",
            missing=missing,
            payment_ref=claim.payment_ref or "",
        )
        await enqueue(tx, identity.user_key, Outgoing(text=text, lang=lang), now)


def _document_label(kind: Any, item: str, lang: str) -> str:
    doc = next((d for d in kind.documents if d.id == item), None) if kind else None
    return str(doc.label(lang)) if doc else item


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals: 12345 -> "123.45"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"
