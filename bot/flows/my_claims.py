"""我的理赔: the member's claims, one opened with where it stands, and the answer to a claim that
staff sent back for more information (documents and/or a few words, sent together).

A claim is looked up by number and shown only when it is this member's: a number typed or an old
button from another account opens nothing.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import Kind, T
from bot.engine.paging import Item, Pager
from bot.flows.claim import OTHER, item_label
from bot.services.claims import NEEDS_INFO, SUBMITTED, UNDER_REVIEW, ClaimRefused, add_info, yuan
from bot.services.media import expect_file, received
from storage.claims import Claim

OPEN = (SUBMITTED, UNDER_REVIEW, NEEDS_INFO)
ANSWER_MAX = 500
MAX_FILES = 10

flow = Flow(
    "my_claims",
    commands=("myclaims",),
    words=("我的理赔", "理赔进度", "my claims"),
    menu_label="claim.my_menu",
    access=Access.members(refusal="claim.join_first"),
)
pager = Pager("my_claims")


async def _claims(turn: Turn) -> list[Claim]:
    member = await turn.member()
    return await turn.tx.claims.for_member(member.id) if member else []


async def _mine(turn: Turn, number: str) -> Claim | None:
    member = await turn.member()
    claim = await turn.tx.claims.by_number(number)
    return claim if claim is not None and member is not None and claim.member_id == member.id else None


def _summary(turn: Turn, claim: Claim) -> dict[str, Any]:
    kind = turn.app.profile.claim_type(claim.type)
    return {
        "number": claim.number,
        "type": kind.label(turn.lang) if kind else claim.type,
        "y": claim.incident_date.year,
        "m": claim.incident_date.month,
        "d": claim.incident_date.day,
        "amount": yuan(claim.claimed_fen),
        "status": claim.status,
        # Once decided, what was missing no longer stands between the member and anything.
        "missing": [item_label(turn, kind, i) for i in claim.missing] if claim.status in OPEN else [],
    }


@flow.start
async def start(turn: Turn, payload: str) -> None:
    if not await _claims(turn):
        turn.say("claim.none_yet")
        turn.finish()
        return
    turn.goto("list")


@flow.ask("list")
async def ask_list(turn: Turn) -> None:
    claims = await _claims(turn)
    pages = max(1, -(-len(claims) // pager.per_page))
    page = min(pager.page(turn), pages - 1)
    shown = claims[page * pager.per_page : (page + 1) * pager.per_page]
    turn.say("claim.list", total=len(claims), claims=[_summary(turn, c) for c in shown])
    pager.show(turn, [Item(c.number, T("claim.list_button", **_summary(turn, c))) for c in claims])
    turn.button(T("claim.back_to_menu"), "back")


@flow.on("list")
async def on_list(turn: Turn) -> None:
    if turn.choice == "back":
        turn.finish()
    elif (picked := pager.picked(turn)) is not None:
        if await _mine(turn, picked) is None:
            turn.retry("claim.not_found")
            return
        turn.data["open"] = picked
        turn.goto("view")


@flow.ask("view")
async def ask_view(turn: Turn) -> None:
    claim = await _mine(turn, turn.data.get("open", ""))
    if claim is None:
        turn.say("claim.not_found")
        turn.goto("list")
        await ask_list(turn)
        return
    turn.say(
        "claim.detail",
        **_summary(turn, claim),
        approved=yuan(claim.approved_fen) if claim.approved_fen is not None else None,
        reason=claim.reason_code,
        reason_text=claim.reason_text,
        payment_ref=claim.payment_ref,
        note=claim.info_note if claim.status == NEEDS_INFO else None,
        asking=claim.status == NEEDS_INFO,
    )
    if claim.status == NEEDS_INFO:
        turn.button(T("claim.answer"), "answer")
    turn.button(T("claim.back_to_list"), "list")
    turn.button(T("claim.back_to_menu"), "back")


@flow.on("view")
async def on_view(turn: Turn) -> None:
    if turn.choice == "answer":
        claim = await _mine(turn, turn.data.get("open", ""))
        if claim is None or claim.status != NEEDS_INFO:
            turn.retry("claim.answer_not_needed")
            return
        turn.data.pop("add_media", None)
        turn.data.pop("add_answer", None)
        turn.goto("answer")
    elif turn.choice == "list":
        turn.goto("list")
    elif turn.choice == "back":
        turn.finish()
    else:
        turn.retry("engine.choose_option")


# -- answering staff's questions ------------------------------------------------------------------
def _next_item(claim: Claim, media: list[dict[str, str]]) -> str:
    """A file goes to the first item staff asked for that this answer has not covered yet."""
    have = {m["item"] for m in media}
    return next((i for i in claim.missing if i not in have), OTHER)


@flow.ask("answer")
async def ask_answer(turn: Turn) -> None:
    claim = await _mine(turn, turn.data.get("open", ""))
    if claim is None or claim.status != NEEDS_INFO:
        turn.say("claim.answer_not_needed")
        turn.goto("view")
        await ask_view(turn)
        return
    expect_file(turn, strip_metadata=True)
    kind = turn.app.profile.claim_type(claim.type)
    media = turn.data.get("add_media", [])
    turn.say(
        "claim.answer_ask",
        number=claim.number,
        asked=[item_label(turn, kind, i) for i in claim.missing],
        note=claim.info_note,
        files=len(media),
        answered=bool(turn.data.get("add_answer")),
    )
    if media or turn.data.get("add_answer"):
        turn.button(T("claim.answer_send"), "send")
    turn.button(T("claim.answer_cancel"), "cancel")


@flow.on("answer")
async def on_answer(turn: Turn) -> None:
    claim = await _mine(turn, turn.data.get("open", ""))
    if claim is None or claim.status != NEEDS_INFO:
        turn.say("claim.answer_not_needed")
        turn.goto("view")
        return
    inc = turn.incoming
    if inc.media is not None or inc.kind in (Kind.PHOTO, Kind.DOCUMENT):
        media: list[dict[str, str]] = turn.data.setdefault("add_media", [])
        if len(media) >= MAX_FILES:
            turn.retry("claim.too_many_files", most=MAX_FILES)
            return
        stored = received(turn)
        if stored is None:
            return
        item = _next_item(claim, media)
        media.append({"id": stored.id, "item": item})
        kind = turn.app.profile.claim_type(claim.type)
        turn.retry("claim.doc_received", item=item_label(turn, kind, item), count=len(media))
    elif turn.choice == "send":
        await _send(turn, claim)
    elif turn.choice == "cancel":
        turn.data.pop("add_media", None)
        turn.data.pop("add_answer", None)
        turn.goto("view")
    elif turn.text:
        text = " ".join(unicodedata.normalize("NFKC", turn.text).split())
        if len(text) > ANSWER_MAX:
            turn.retry("claim.answer_too_long", most=ANSWER_MAX, got=len(text))
            return
        turn.data["add_answer"] = text
        turn.retry("claim.answer_noted")
    else:
        turn.retry("claim.answer_hint")


async def _send(turn: Turn, claim: Claim) -> None:
    media = list(turn.data.get("add_media", []))
    answer = turn.data.get("add_answer")
    member = await turn.member()
    if member is None or not (media or answer):
        turn.retry("claim.answer_empty")
        return
    try:
        await add_info(turn.tx, turn.app, claim.number, member, media=media, answer=answer, now=turn.now)
    except ClaimRefused:  # staff moved it meanwhile (decided it, or took the question back)
        turn.say("claim.answer_not_needed")
        turn.goto("view")
        return
    turn.data.pop("add_media", None)
    turn.data.pop("add_answer", None)
    turn.say("claim.answer_sent", number=claim.number)
    turn.goto("view")
