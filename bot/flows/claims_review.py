"""Claims review in the staff menu (claims officers and admin): the queue, one claim in full with its
documents sent back as pictures, and the decisions on it: take, ask for information, approve, reject,
mark paid.

Every decision is shown in full (amount, reason, items) and applied only once the staffer confirms,
through `bot.services.claims` with the version of the claim the staffer last saw. Someone else
changing the claim in between (another reviewer, the CLI) makes the service refuse; the staffer is
then told plainly that nothing was done and shown the claim as it is now. Payout details are only
ever shown masked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, overload
from zoneinfo import ZoneInfo

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.privacy import mask_account, mask_id_number, mask_name, mask_phone
from bot.services.claims import (
    APPROVED,
    NEEDS_INFO,
    PAID,
    REJECT_REASONS,
    REJECTED,
    SUBMITTED,
    UNDER_REVIEW,
    ClaimRefused,
    move,
    parse_yuan,
    take,
    yuan,
)
from bot.services.media import JPEG, PNG, path_of, size_text
from storage.claims import Claim

flow = Flow("claims_review", commands=("review",), access=Access.staff("claims", tool="claims_review.tool"))

# Two queues: what waits for a decision, and what was approved and waits to be paid.
VIEWS: dict[str, tuple[str, ...]] = {"review": (SUBMITTED, UNDER_REVIEW, NEEDS_INFO), "pay": (APPROVED,)}
queue_pager = Pager("claims")
NOTE_MAX = 500  # a note reaches the member in a chat message: a few sentences, not a letter
REF_MAX = 64
_NUMBER = re.compile(r"[A-Z]{1,4}\d{4}-\d{6}")
_ITEM, _REASON = "item:", "reason:"
# Each decision, the state it leads to, and the step where it is filled in (to go back to).
_TO = {"info": NEEDS_INFO, "approve": APPROVED, "reject": REJECTED, "paid": PAID}
_FILLED_IN = {"take": "claim", "info": "info_note", "approve": "amount", "reject": "reason_note", "paid": "payref"}


class _Window(Sequence[Item]):
    """One page of a queue standing in for all of it: the pager only counts the list and slices out
    the page it shows, so a queue of thousands is never loaded whole."""

    def __init__(self, total: int, start: int, items: list[Item]) -> None:
        self.total, self.start, self.items = total, start, items

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, i: int) -> Item: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Item]: ...
    def __getitem__(self, i: int | slice) -> Item | Sequence[Item]:
        if isinstance(i, slice):
            start = i.start or 0
            return self.items[start - self.start : (i.stop or self.total) - self.start]
        return self.items[i - self.start]


# -- entering, and the queue -------------------------------------------------------------------------
@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.data["view"] = "review"
    turn.goto("queue")


@flow.ask("queue")
async def ask_queue(turn: Turn) -> None:
    claims = turn.tx.claims
    view = turn.data.get("view") if turn.data.get("view") in VIEWS else "review"
    counts = {s: await claims.count((s,)) for s in (*VIEWS["review"], *VIEWS["pay"])}
    total = sum(counts[s] for s in VIEWS[view])
    per = queue_pager.per_page
    page = min(queue_pager.page(turn), max(0, total - 1) // per)
    shown = await claims.queue(VIEWS[view], page * per, per)
    turn.say(f"claims_review.queue_{view}", total=total, **counts)
    items = [Item(c.number, _queue_label(turn, c)) for c in shown]
    turn.data[queue_pager.key] = page
    queue_pager.show(turn, _Window(total, page * per, items))
    other = "pay" if view == "review" else "review"
    turn.button(T(f"claims_review.view_{other}", count=sum(counts[s] for s in VIEWS[other])), "view")
    turn.button(T("claims_review.to_staff_menu"), "back")


def _queue_label(turn: Turn, claim: Claim) -> T:
    return T(
        "claims_review.queue_item",
        number=claim.number,
        type=_type_label(turn, claim.type),
        claimed=yuan(claim.claimed_fen),
        status=claim.status,
        mine=claim.assignee == turn.user_key,
        submitted=_local(turn, claim.created_at, "%m-%d"),
    )


@flow.on("queue")
async def on_queue(turn: Turn) -> None:
    if turn.choice == "view":
        turn.data["view"] = "pay" if turn.data.get("view") == "review" else "review"
        turn.data[queue_pager.key] = 0
        turn.retry()
    elif turn.choice == "back":
        await turn.begin("staff")
    elif turn.choice is None and _NUMBER.fullmatch(typed := turn.text.upper().replace(" ", "")):
        await _open(turn, typed)  # a number typed from a phone call or the CLI
    elif (picked := queue_pager.picked(turn)) is not None:
        await _open(turn, picked)


async def _open(turn: Turn, number: str) -> None:
    claim = await turn.tx.claims.by_number(number)
    if claim is None:
        turn.retry("claims_review.not_found", number=number)
        return
    _seen(turn, claim)
    turn.data["doc"] = 0
    turn.goto("claim")


def _seen(turn: Turn, claim: Claim) -> None:
    """The claim as the staffer now sees it: their decisions apply to this version or not at all."""
    turn.data["number"], turn.data["version"] = claim.number, claim.version
    turn.data.pop("pending", None)


async def _current(turn: Turn) -> Claim | None:
    number = turn.data.get("number")
    return await turn.tx.claims.by_number(number) if isinstance(number, str) else None


# -- one claim -----------------------------------------------------------------------------------------
@flow.ask("claim")
async def ask_claim(turn: Turn) -> None:
    claim = await _current(turn)
    if claim is None:
        turn.say("claims_review.gone")
        turn.button(T("claims_review.to_queue"), "queue")
        return
    if claim.version != turn.data.get("version"):
        turn.say("claims_review.changed_meanwhile", status=claim.status)
        _seen(turn, claim)
    documents = await turn.tx.claims.documents(claim.id)
    turn.say("claims_review.detail", **await _details(turn, claim))
    turn.say("claims_review.checklist", **_checklist(turn, claim, [d.item for d in documents]))
    turn.say("claims_review.history", events=await _history(turn, claim))
    if documents:
        turn.button(T("claims_review.see_documents", count=len(documents)), "docs")
    for action in _ACTIONS.get(claim.status, ()):
        turn.button(T(f"claims_review.action_{action}"), action)
    turn.button(T("claims_review.to_queue"), "queue")


# What a staffer may do from each state; NEEDS_INFO waits for the member, REJECTED and PAID are settled.
_ACTIONS = {SUBMITTED: ("take",), UNDER_REVIEW: ("info", "approve", "reject"), APPROVED: ("paid",)}


@flow.on("claim")
async def on_claim(turn: Turn) -> None:
    choice = turn.choice
    if choice == "queue":
        turn.goto("queue")
        return
    claim = await _current(turn)
    if claim is None or claim.version != turn.data.get("version"):
        turn.retry()  # changed or gone since it was shown: show it as it is now
    elif choice == "docs":
        turn.data["doc"] = 0
        turn.goto("docs")
    elif choice not in _ACTIONS.get(claim.status, ()):
        turn.retry("engine.choose_option")
    elif choice == "take":
        turn.data["pending"] = {"action": "take"}
        turn.goto("confirm")
    elif choice == "info":
        checklist = {d.id for d in _documents_of(turn, claim.type)}
        turn.data["items"] = [i for i in claim.missing if i in checklist]
        turn.goto("info_items")
    elif choice == "approve":
        turn.goto("amount")
    elif choice == "reject":
        turn.goto("reason")
    else:
        turn.goto("payref")


async def _details(turn: Turn, claim: Claim) -> dict[str, Any]:
    keyring, lang = turn.app.keyring, turn.lang
    member = await turn.tx.members.by_id(claim.member_id)
    who = None
    if member is not None:
        who = {
            "number": member.member_number,
            "name": mask_name(member.name),
            "phone": mask_phone(keyring.decrypt(member.phone_enc)),
        }
    kind = claim.payout_kind
    account = keyring.decrypt(claim.payout_account_enc)
    return {
        "number": claim.number,
        "status": claim.status,
        "type": _type_label(turn, claim.type),
        "incident": claim.incident_date.isoformat(),
        "submitted": _local(turn, claim.created_at),
        "description": claim.description,
        "claimed": yuan(claim.claimed_fen),
        "approved": yuan(claim.approved_fen) if claim.approved_fen is not None else None,
        "member": who,
        "payout_kind": kind,
        "holder": mask_name(keyring.decrypt(claim.payout_holder_enc)),
        # An Alipay account may be a mobile number, which is masked as one.
        "account": mask_phone(account) if kind == "alipay" and "@" not in account else mask_account(account),
        "id_number": mask_id_number(keyring.decrypt(claim.id_number_enc)) if claim.id_number_enc else None,
        "assignee": await _who(turn, claim.assignee) if claim.assignee else None,
        "incomplete": claim.incomplete,
        "appealed": claim.appealed,
        "reason": claim.reason_code,
        "reason_text": claim.reason_text,
        "payment_ref": claim.payment_ref,
        "lang": lang,
    }


def _checklist(turn: Turn, claim: Claim, items: list[str]) -> dict[str, Any]:
    lines = []
    for doc in _documents_of(turn, claim.type):
        lines.append(
            {
                "label": doc.label(turn.lang),
                "count": items.count(doc.id),
                "required": doc.required,
                "hint": doc.hint(turn.lang) if doc.hint else None,
            }
        )
    known = {d.id for d in _documents_of(turn, claim.type)}
    asked = [_item_label(turn, claim.type, i) for i in claim.missing] if claim.status == NEEDS_INFO else []
    return {
        "docs": lines,
        "others": sum(1 for i in items if i not in known),
        "asked": asked,
        "info_note": claim.info_note if claim.status == NEEDS_INFO else None,
    }


async def _history(turn: Turn, claim: Claim) -> list[dict[str, Any]]:
    events = await turn.tx.claims.history(claim.id)
    return [
        {
            "at": _local(turn, e.at),
            "who": await _who(turn, e.actor),
            "from": e.from_status,
            "to": e.to_status,
            "note": e.note,
        }
        for e in events
    ]


async def _who(turn: Turn, actor: str) -> dict[str, str]:
    """A history actor as staff may see them: a staffer by name; a member as "the member", never by
    their account on a platform."""
    if actor == turn.user_key:
        return {"kind": "you"}
    if actor == "cli":
        return {"kind": "cli"}
    staffer = await turn.tx.staff.get(actor)
    if staffer is not None:
        return {"kind": "staff", "name": staffer.name}
    return {"kind": "member"} if ":" in actor else {"kind": "system"}


def _type_label(turn: Turn, type_id: str) -> str:
    kind = turn.app.profile.claim_type(type_id)
    return kind.label(turn.lang) if kind else type_id


def _documents_of(turn: Turn, type_id: str) -> tuple[Any, ...]:
    kind = turn.app.profile.claim_type(type_id)
    return kind.documents if kind else ()


def _item_label(turn: Turn, type_id: str, item: str) -> str | T:
    doc = next((d for d in _documents_of(turn, type_id) if d.id == item), None)
    return doc.label(turn.lang) if doc else T("claims_review.item_other")


def _local(turn: Turn, at: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return at.astimezone(ZoneInfo(turn.app.profile.timezone)).strftime(fmt)


# -- documents, one picture a message ----------------------------------------------------------------
@flow.ask("docs")
async def ask_docs(turn: Turn) -> None:
    claim = await _current(turn)
    documents = await turn.tx.claims.documents(claim.id) if claim else []
    if claim is None or not documents:
        turn.say("claims_review.no_documents")
        turn.button(T("claims_review.back_to_claim"), "back")
        return
    index = turn.data.get("doc", 0)
    index = index % len(documents) if isinstance(index, int) else 0
    turn.data["doc"] = index
    doc = documents[index]
    record = await turn.tx.media.get(doc.media_id)
    shown = {"index": index + 1, "count": len(documents), "number": claim.number}
    label = _item_label(turn, claim.type, doc.item)
    label = turn.app.locale.render(turn.lang, label)
    if record is None:
        turn.say("claims_review.document_lost", label=label, **shown)
    elif record.mime in (JPEG, PNG):
        # A read from the local media store, like the card's image: the reply carries the picture.
        try:
            turn.image(path_of(turn.app.settings.media_path(), record.sha256).read_bytes())
            turn.say("claims_review.document_image", label=label, **shown)
        except OSError:
            turn.say("claims_review.document_lost", label=label, **shown)
    else:
        turn.say("claims_review.document_pdf", label=label, size=size_text(record.size), **shown)
    if len(documents) > 1:
        turn.button(T("claims_review.next_document"), "next")
    turn.button(T("claims_review.back_to_claim"), "back")


@flow.on("docs")
async def on_docs(turn: Turn) -> None:
    if turn.choice == "next":
        turn.data["doc"] = int(turn.data.get("doc", 0)) + 1
        turn.retry()
    elif turn.choice == "back":
        turn.goto("claim")
    else:
        turn.retry("engine.choose_option")


# -- asking for information ----------------------------------------------------------------------------
@flow.ask("info_items")
async def ask_info_items(turn: Turn) -> None:
    claim = await _current(turn)
    picked = turn.data.get("items", [])
    turn.say("claims_review.ask_info_items", number=turn.data.get("number"))
    for doc in _documents_of(turn, claim.type) if claim else ():
        turn.button(T("claims_review.item_toggle", label=doc.label(turn.lang), on=doc.id in picked), _ITEM + doc.id)
    turn.button(T("claims_review.items_done"), "next")
    turn.button(T("claims_review.back_to_claim"), "back")


@flow.on("info_items")
async def on_info_items(turn: Turn) -> None:
    choice = turn.choice or ""
    picked: list[str] = list(turn.data.get("items", []))
    if choice.startswith(_ITEM):
        item = choice[len(_ITEM) :]
        turn.data["items"] = [i for i in picked if i != item] if item in picked else [*picked, item]
        turn.retry()
    elif choice == "next":
        turn.goto("info_note")
    elif choice == "back":
        turn.goto("claim")
    else:
        turn.retry("engine.choose_option")


@flow.ask("info_note")
async def ask_info_note(turn: Turn) -> None:
    items = turn.data.get("items", [])
    turn.say("claims_review.ask_info_note", picked=bool(items))
    if items:  # the list alone may say it all; without one the note is what the member goes by
        turn.button(T("claims_review.no_note"), "skip")
    turn.button(T("claims_review.back_to_items"), "back")


@flow.on("info_note")
async def on_info_note(turn: Turn) -> None:
    items = list(turn.data.get("items", []))
    if turn.choice == "back":
        turn.goto("info_items")
    elif turn.choice == "skip" and items:
        turn.data["pending"] = {"action": "info", "items": items, "note": None}
        turn.goto("confirm")
    elif (note := _note(turn)) is not None:
        turn.data["pending"] = {"action": "info", "items": items, "note": note}
        turn.goto("confirm")


def _note(turn: Turn) -> str | None:
    """A typed note for the member, or None once the staffer was asked again."""
    note = " ".join(turn.text.split()) if turn.choice is None else ""
    if len(note) < 2:
        turn.retry("claims_review.note_needed")
        return None
    if len(note) > NOTE_MAX:
        turn.retry("claims_review.note_too_long", limit=NOTE_MAX)
        return None
    return note


# -- approving -----------------------------------------------------------------------------------------
@flow.ask("amount")
async def ask_amount(turn: Turn) -> None:
    claim = await _current(turn)
    claimed = yuan(claim.claimed_fen) if claim else "?"
    turn.say("claims_review.ask_amount", number=turn.data.get("number"), claimed=claimed)
    if claim:
        turn.button(T("claims_review.full_amount", claimed=claimed), "full")
    turn.button(T("claims_review.back_to_claim"), "back")


@flow.on("amount")
async def on_amount(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("claim")
        return
    claim = await _current(turn)
    if claim is None:
        turn.goto("claim")
        return
    fen = claim.claimed_fen if turn.choice == "full" else parse_yuan(turn.text) if turn.choice is None else None
    if fen is None:
        turn.retry("claims_review.amount_bad")
    elif fen > claim.claimed_fen:
        turn.retry("claims_review.amount_over", amount=yuan(fen), claimed=yuan(claim.claimed_fen))
    else:
        turn.data["pending"] = {"action": "approve", "fen": fen}
        turn.goto("confirm")


# -- rejecting -----------------------------------------------------------------------------------------
@flow.ask("reason")
async def ask_reason(turn: Turn) -> None:
    turn.say("claims_review.ask_reason", number=turn.data.get("number"))
    for code in REJECT_REASONS:
        turn.button(T(f"claims.reason_{code}"), _REASON + code)
    turn.button(T("claims_review.back_to_claim"), "back")


@flow.on("reason")
async def on_reason(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        turn.goto("claim")
    elif choice.startswith(_REASON) and choice[len(_REASON) :] in REJECT_REASONS:
        turn.data["reason"] = choice[len(_REASON) :]
        turn.goto("reason_note")
    else:
        turn.retry("engine.choose_option")


@flow.ask("reason_note")
async def ask_reason_note(turn: Turn) -> None:
    turn.say("claims_review.ask_reason_note", reason=turn.data.get("reason", "other"))
    turn.button(T("claims_review.back_to_reasons"), "back")


@flow.on("reason_note")
async def on_reason_note(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("reason")
    elif (note := _note(turn)) is not None:
        turn.data["pending"] = {"action": "reject", "reason": turn.data.get("reason", "other"), "note": note}
        turn.goto("confirm")


# -- paying --------------------------------------------------------------------------------------------
@flow.ask("payref")
async def ask_payref(turn: Turn) -> None:
    claim = await _current(turn)
    approved = yuan(claim.approved_fen) if claim and claim.approved_fen is not None else "?"
    turn.say("claims_review.ask_payref", number=turn.data.get("number"), approved=approved)
    turn.button(T("claims_review.back_to_claim"), "back")


@flow.on("payref")
async def on_payref(turn: Turn) -> None:
    ref = turn.text if turn.choice is None else ""
    if turn.choice == "back":
        turn.goto("claim")
    elif not ref or len(ref) > REF_MAX or any(c.isspace() for c in ref):
        turn.retry("claims_review.payref_bad", limit=REF_MAX)
    else:
        turn.data["pending"] = {"action": "paid", "ref": ref}
        turn.goto("confirm")


# -- confirming and applying ---------------------------------------------------------------------------
@flow.ask("confirm")
async def ask_confirm(turn: Turn) -> None:
    pending = turn.data.get("pending")
    claim = await _current(turn)
    if not isinstance(pending, dict) or claim is None:
        turn.say("claims_review.nothing_pending")
        turn.button(T("claims_review.back_to_claim"), "back")
        return
    turn.say(f"claims_review.confirm_{pending['action']}", **_what(turn, claim, pending))
    turn.button(T("claims_review.yes_apply"), "yes")
    turn.button(T("claims_review.change"), "change")
    turn.button(T("claims_review.back_to_claim"), "back")


def _what(turn: Turn, claim: Claim, pending: dict[str, Any]) -> dict[str, Any]:
    """Exactly what the decision will do, for the confirmation."""
    return {
        "number": claim.number,
        "status": claim.status,
        "claimed": yuan(claim.claimed_fen),
        "approved": yuan(claim.approved_fen) if claim.approved_fen is not None else None,
        "amount": yuan(pending["fen"]) if "fen" in pending else None,
        "partial": pending.get("fen", claim.claimed_fen) < claim.claimed_fen,
        "items": [_item_label(turn, claim.type, i) for i in pending.get("items", ())],
        "reason": pending.get("reason"),
        "note": pending.get("note"),
        "ref": pending.get("ref"),
    }


@flow.on("confirm")
async def on_confirm(turn: Turn) -> None:
    pending = turn.data.get("pending")
    if turn.choice == "back" or not isinstance(pending, dict):
        turn.data.pop("pending", None)
        turn.goto("claim")
    elif turn.choice == "change":
        turn.goto(_FILLED_IN.get(pending.get("action", ""), "claim"))
    elif turn.choice == "yes":
        await _apply(turn, pending)
    else:
        turn.retry("engine.choose_option")


async def _apply(turn: Turn, pending: dict[str, Any]) -> None:
    number, action = turn.data.get("number", ""), pending.get("action", "")
    expected = turn.data.get("version")
    try:
        if action == "take":
            # Taking only leaves SUBMITTED, so any change since the staffer saw it shows as a change of state.
            claim = await take(turn.tx, turn.app, number, actor=turn.user_key, now=turn.now)
        else:
            claim = await move(
                turn.tx,
                turn.app,
                number,
                _TO[action],
                actor=turn.user_key,
                now=turn.now,
                note=pending.get("note"),
                approved_fen=pending.get("fen"),
                reason_code=pending.get("reason"),
                payment_ref=pending.get("ref"),
                missing=pending.get("items"),
                expected_version=expected,
            )
    except ClaimRefused as refused:
        if refused.reason == "bad_amount":  # the form already checks; the service has the last word
            turn.say("claims_review.amount_refused")
            turn.goto("amount")
            return
        # Moved by someone else since the staffer saw it (or gone): nothing done, and said so; the
        # claim step then shows it as it is now.
        turn.say("claims_review.not_applied", action=action, number=number)
        turn.data.pop("pending", None)
        turn.goto("claim")
        return
    _seen(turn, claim)
    turn.say("claims_review.applied", action=action, number=claim.number, status=claim.status)
    turn.goto("claim")
