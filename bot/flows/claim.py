"""理赔申请: type -> incident date -> what happened -> amount -> documents -> payout -> check -> submit.

The answers are a form (`bot.engine.forms`), so the summary and "change X" come with it. Nothing is
written outside the session until the summary is confirmed, except the files, which the media store
keeps unlinked until `submit` links them (a claim given up leaves them to `purge_unlinked`).

Riders' claims mostly fail on paperwork, so every refusal says which rule it was (the date is before
joining, or too long ago for this cover; the amount is over the limit) and the document step shows the
checklist with a running tally. Files go to the checklist item shown as "next", which moves on by
itself to the next required item still missing: a typical claim is photos and one tap.

Payout details (holder, account, ID number) are encrypted in the session the moment they arrive, as
join does with the phone, and are only ever shown masked.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import ClaimType
from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.forms import Field, Form
from bot.engine.messages import Kind, T
from bot.engine.substeps import today_of
from bot.privacy import mask_account, mask_id_number, mask_name
from bot.services.claims import submit, yuan
from bot.services.media import expect_file, received
from bot.validation import alipay_account, bank_account, cn_id_number, parse_yuan, person_name, yuan_refusal

DESCRIPTION_MIN, DESCRIPTION_MAX = 10, 500
MAX_FILES = 20  # far more than a claim needs; keeps a session row and a reviewer's queue sane
OTHER = "other"  # a file that is on no checklist line
BANK, ALIPAY = "bank", "alipay"

flow = Flow(
    "claim",
    commands=("claim",),
    words=("理赔", "我要理赔", "申请理赔", "claim"),
    menu_label="claim.menu",
    access=Access.members(refusal="claim.join_first"),
)


def claim_type(turn: Turn) -> ClaimType | None:
    return turn.app.profile.claim_type(turn.data.get("type", ""))


def type_label(turn: Turn, type_id: str) -> str:
    kind = turn.app.profile.claim_type(type_id)
    return kind.label(turn.lang) if kind else type_id


def item_label(turn: Turn, kind: ClaimType | None, item: str) -> str:
    doc = next((d for d in kind.documents if d.id == item), None) if kind else None
    return doc.label(turn.lang) if doc else turn.app.locale.text(turn.lang, "claim.item_other")


def _day(d: date) -> dict[str, int]:
    return {"y": d.year, "m": d.month, "d": d.day}


@flow.start
async def start(turn: Turn, payload: str) -> None:
    if not turn.app.profile.claim_types:
        turn.say("claim.no_cover")
        turn.finish()
        return
    turn.say("claim.welcome")
    await form.start(turn)


# -- type ----------------------------------------------------------------------------------------------
async def ask_type(turn: Turn) -> None:
    kinds = [
        {"label": k.label(turn.lang), "limit": yuan(k.cover_limit_fen), "days": k.window_days}
        for k in turn.app.profile.claim_types
    ]
    turn.say("claim.ask_type", kinds=kinds)
    for k in turn.app.profile.claim_types:
        turn.button(k.label(turn.lang), f"t:{k.id}")


async def on_type(turn: Turn) -> None:
    kind = turn.app.profile.claim_type((turn.choice or "").removeprefix("t:"))
    if kind is None or not (turn.choice or "").startswith("t:"):
        turn.retry("claim.choose_type")
        return
    if turn.data.get("type") not in (None, kind.id):
        # Another cover has another window, limit and checklist: what was answered for the old one
        # is asked again (the files are kept, put under "other" unless the new checklist has them).
        for key in ("incident_date", "claimed_fen", "docs_done", "id_number_enc", "doc_item"):
            turn.data.pop(key, None)
        ids = {d.id for d in kind.documents}
        turn.data["media"] = [
            {**m, "item": m["item"] if m["item"] in ids else OTHER} for m in turn.data.get("media", [])
        ]
    turn.data["type"] = kind.id
    turn.data["need_id"] = kind.require_id_number
    await form.next(turn)


# -- incident date ------------------------------------------------------------------------------------
def date_args(turn: Turn) -> dict[str, Any]:
    return {"prompt": "claim.ask_date", "not_future": True}


async def date_refusal(turn: Turn, day: date) -> T | None:
    """Which rule the incident date breaks, or None. The picker already refused a future day."""
    member = await turn.member()
    kind = claim_type(turn)
    today = today_of(turn)
    # The day membership began where the union is: joined at 23:30 UTC is the next day in Hangzhou.
    joined = member.joined_at.astimezone(ZoneInfo(turn.app.profile.timezone)).date() if member else None
    if joined is not None and day < joined:
        return T("claim.date_before_joining", **_day(joined))
    if kind is not None and (today - day).days > kind.window_days:
        return T("claim.date_outside_window", days=kind.window_days, type=kind.label(turn.lang))
    return None


async def on_date(turn: Turn) -> None:
    if turn.returned != "pick_date":  # resting here after a refusal: back into the picker
        await turn.call("pick_date", then="incident_date", prompt="claim.ask_date", not_future=True)
        return
    day = date.fromisoformat(turn.result)
    refused = await date_refusal(turn, day)
    if refused is not None:
        turn.say(refused.key, **refused.context)
        await turn.call("pick_date", then="incident_date", prompt="claim.ask_date", not_future=True)
        return
    turn.data["incident_date"] = day.isoformat()
    await form.next(turn)


def show_date(turn: Turn) -> T:
    return T("claim.day", **_day(date.fromisoformat(turn.data["incident_date"])))


# -- what happened ------------------------------------------------------------------------------------
async def on_description(turn: Turn) -> None:
    # NFC, not NFKC: the rider's own words keep their full-width punctuation (，。) as written.
    text = " ".join(unicodedata.normalize("NFC", turn.text).split())
    if len(text) < DESCRIPTION_MIN or not any(ch.isalnum() for ch in text):
        turn.retry("claim.description_short", least=DESCRIPTION_MIN)
        return
    if len(text) > DESCRIPTION_MAX:
        turn.retry("claim.description_long", most=DESCRIPTION_MAX, got=len(text))
        return
    turn.data["description"] = text
    await form.next(turn)


def show_description(turn: Turn) -> str:
    text = turn.data["description"]
    return text if len(text) <= 60 else text[:60] + "…"


# -- amount -------------------------------------------------------------------------------------------
async def ask_amount(turn: Turn) -> None:
    kind = claim_type(turn)
    limit = yuan(kind.cover_limit_fen) if kind else ""
    turn.say("claim.ask_amount", limit=limit, type=kind.label(turn.lang) if kind else "")


def amount_problem(text: str) -> str:
    """The locale key telling what is wrong with an amount `parse_yuan` refused."""
    return f"claim.amount_{yuan_refusal(text)}"


async def on_amount(turn: Turn) -> None:
    kind = claim_type(turn)
    fen = parse_yuan(turn.text) if turn.text else None
    if fen is None:
        turn.retry(amount_problem(turn.text))
        return
    if kind is not None and fen > kind.cover_limit_fen:
        turn.retry("claim.amount_over_limit", limit=yuan(kind.cover_limit_fen), type=kind.label(turn.lang))
        return
    turn.data["claimed_fen"] = fen
    await form.next(turn)


def show_amount(turn: Turn) -> T:
    return T("claim.yuan", amount=yuan(turn.data["claimed_fen"]))


# -- documents ---------------------------------------------------------------------------------------
def missing_required(kind: ClaimType | None, media: list[dict[str, str]]) -> list[str]:
    have = {m["item"] for m in media}
    return [d.id for d in kind.documents if d.required and d.id not in have] if kind else []


def next_item(kind: ClaimType | None, media: list[dict[str, str]], current: str | None) -> str:
    """Where the next file goes: the item chosen or moved on to, else the first required one still
    missing, else the first not sent yet, else "other"."""
    if current:
        return current
    have = {m["item"] for m in media}
    docs = kind.documents if kind else ()
    for doc in [d for d in docs if d.required] + [d for d in docs if not d.required]:
        if doc.id not in have:
            return doc.id
    return OTHER


def checklist(turn: Turn) -> list[dict[str, Any]]:
    kind = claim_type(turn)
    media = turn.data.get("media", [])
    rows = [
        {
            "label": d.label(turn.lang),
            "required": d.required,
            "hint": d.hint(turn.lang) if d.hint else None,
            "count": sum(1 for m in media if m["item"] == d.id),
        }
        for d in (kind.documents if kind else ())
    ]
    others = sum(1 for m in media if m["item"] == OTHER)
    if others:
        rows.append({"label": item_label(turn, kind, OTHER), "required": False, "hint": None, "count": others})
    return rows


async def ask_documents(turn: Turn) -> None:
    expect_file(turn, strip_metadata=True)  # a phone photo carries where it was taken: not ours to keep
    kind = claim_type(turn)
    media = turn.data.get("media", [])
    current = next_item(kind, media, turn.data.get("doc_item"))
    turn.say("claim.checklist", rows=checklist(turn), files=len(media), most=MAX_FILES)
    missing = missing_required(kind, media)
    turn.say("claim.send_next", item=item_label(turn, kind, current), missing=bool(missing))
    turn.button(T("claim.docs_done" if not missing else "claim.docs_finish_anyway"), "done")
    for doc in kind.documents if kind else ():
        if doc.id != current:
            turn.button(T("claim.send_item", item=doc.label(turn.lang)), f"i:{doc.id}")
    if current != OTHER:
        turn.button(T("claim.send_item", item=item_label(turn, kind, OTHER)), f"i:{OTHER}")


async def on_documents(turn: Turn) -> None:
    kind = claim_type(turn)
    media: list[dict[str, str]] = turn.data.setdefault("media", [])
    choice = turn.choice or ""
    if turn.incoming.media is not None or turn.incoming.kind in (Kind.PHOTO, Kind.DOCUMENT):
        if len(media) >= MAX_FILES:
            turn.retry("claim.too_many_files", most=MAX_FILES)
            return
        stored = received(turn)
        if stored is None:
            return
        item = next_item(kind, media, turn.data.get("doc_item"))
        media.append({"id": stored.id, "item": item})
        # On to the next required item still missing; once none is, further files are more pages of
        # this one (three receipts in a row), until the member picks another line.
        missing = missing_required(kind, media)
        turn.data["doc_item"] = missing[0] if missing else item
        turn.retry("claim.doc_received", item=item_label(turn, kind, item), count=len(media))
    elif choice.startswith("i:"):
        item = choice[2:]
        if item != OTHER and not any(d.id == item for d in (kind.documents if kind else ())):
            turn.retry("engine.choose_option")
            return
        turn.data["doc_item"] = item
        turn.retry()
    elif choice == "done":
        missing = missing_required(kind, media)
        if missing:
            turn.goto("documents_missing")
        else:
            turn.data["docs_done"] = True
            await form.next(turn)
    else:
        turn.retry("claim.docs_hint")


@flow.ask("documents_missing")
async def ask_documents_missing(turn: Turn) -> None:
    kind = claim_type(turn)
    missing = [item_label(turn, kind, i) for i in missing_required(kind, turn.data.get("media", []))]
    turn.say("claim.docs_missing_warning", missing=missing)
    turn.button(T("claim.docs_keep_sending"), "back")
    turn.button(T("claim.docs_later"), "later")


@flow.on("documents_missing")
async def on_documents_missing(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("documents")
    elif turn.choice == "later":
        turn.data["docs_done"] = True
        await form.next(turn)
    else:
        turn.retry("engine.choose_option")


def show_documents(turn: Turn) -> T:
    kind = claim_type(turn)
    media = turn.data.get("media", [])
    missing = [item_label(turn, kind, i) for i in missing_required(kind, media)]
    return T("claim.documents_shown", files=len(media), missing=missing)


# -- payout -------------------------------------------------------------------------------------------
async def ask_payout_kind(turn: Turn) -> None:
    turn.say("claim.ask_payout_kind")
    turn.button(T("claim.payout_bank"), BANK)
    turn.button(T("claim.payout_alipay"), ALIPAY)


async def on_payout_kind(turn: Turn) -> None:
    if turn.choice not in (BANK, ALIPAY):
        turn.retry("claim.choose_payout_kind")
        return
    if turn.data.get("payout_kind") not in (None, turn.choice):
        turn.data.pop("payout_account_enc", None)  # a card number is no Alipay account
    turn.data["payout_kind"] = turn.choice
    await form.next(turn)


def show_payout_kind(turn: Turn) -> T:
    return T("claim.payout_bank" if turn.data["payout_kind"] == BANK else "claim.payout_alipay")


async def on_holder(turn: Turn) -> None:
    name = person_name(turn.text)
    if name is None:
        turn.retry("claim.holder_invalid")
        return
    turn.data["payout_holder_enc"] = turn.app.keyring.encrypt(name)
    await form.next(turn)


def show_holder(turn: Turn) -> str:
    return mask_name(turn.app.keyring.decrypt(turn.data["payout_holder_enc"]))


async def ask_account(turn: Turn) -> None:
    turn.say("claim.ask_account_bank" if turn.data.get("payout_kind") == BANK else "claim.ask_account_alipay")


async def on_account(turn: Turn) -> None:
    bank = turn.data.get("payout_kind") == BANK
    account = (bank_account if bank else alipay_account)(turn.text)
    if account is None:
        turn.retry("claim.account_invalid_bank" if bank else "claim.account_invalid_alipay")
        return
    turn.data["payout_account_enc"] = turn.app.keyring.encrypt(account)
    await form.next(turn)


def show_account(turn: Turn) -> str:
    return mask_account(turn.app.keyring.decrypt(turn.data["payout_account_enc"]))


async def on_id_number(turn: Turn) -> None:
    id_number = cn_id_number(turn.text)
    if id_number is None:
        turn.retry("claim.id_invalid")
        return
    turn.data["id_number_enc"] = turn.app.keyring.encrypt(id_number)
    await form.next(turn)


def show_id_number(turn: Turn) -> str:
    return mask_id_number(turn.app.keyring.decrypt(turn.data["id_number_enc"]))


# -- submit ------------------------------------------------------------------------------------------
async def _submit(turn: Turn) -> None:
    member = await turn.member()
    if member is None:  # left on another channel meanwhile; access stops the flow at the next message
        turn.say("roles.member_gone")
        turn.finish()
        return
    d = turn.data
    draft = {
        "type": d["type"],
        "incident_date": d["incident_date"],
        "description": d["description"],
        "claimed_fen": d["claimed_fen"],
        "media": list(d.get("media", [])),
        "payout_kind": d["payout_kind"],
        "payout_holder_enc": d["payout_holder_enc"],
        "payout_account_enc": d["payout_account_enc"],
        "id_number_enc": d.get("id_number_enc") if d.get("need_id") else None,
    }
    claim = await submit(turn.tx, turn.app, member, draft, now=turn.now, actor=turn.user_key)
    kind = claim_type(turn)
    turn.say(
        "claim.submitted",
        number=claim.number,
        missing=[item_label(turn, kind, i) for i in claim.missing] if claim.incomplete else [],
    )
    turn.finish()


form = Form(
    flow,
    [
        Field("type", ask=ask_type, on=on_type, label="claim.label_type", show=lambda t: type_label(t, t.data["type"])),
        Field(
            "incident_date",
            ask="claim.ask_date",
            call="pick_date",
            call_args=date_args,
            on=on_date,
            label="claim.label_date",
            show=show_date,
        ),
        Field(
            "description",
            ask="claim.ask_description",
            on=on_description,
            label="claim.label_description",
            show=show_description,
            context={"least": DESCRIPTION_MIN, "most": DESCRIPTION_MAX},
        ),
        Field("amount", ask=ask_amount, on=on_amount, key="claimed_fen", label="claim.label_amount", show=show_amount),
        Field(
            "documents",
            ask=ask_documents,
            on=on_documents,
            key="docs_done",
            label="claim.label_documents",
            show=show_documents,
        ),
        Field(
            "payout_kind",
            ask=ask_payout_kind,
            on=on_payout_kind,
            label="claim.label_payout_kind",
            show=show_payout_kind,
        ),
        Field(
            "payout_holder",
            ask="claim.ask_holder",
            on=on_holder,
            key="payout_holder_enc",
            label="claim.label_holder",
            show=show_holder,
        ),
        Field(
            "payout_account",
            ask=ask_account,
            on=on_account,
            key="payout_account_enc",
            label="claim.label_account",
            show=show_account,
        ),
        Field(
            "id_number",
            ask="claim.ask_id_number",
            on=on_id_number,
            key="id_number_enc",
            when=lambda d: bool(d.get("need_id")),
            label="claim.label_id_number",
            show=show_id_number,
        ),
    ],
    summary="claim.summary",
    confirm=T("claim.confirm"),
    on_confirm=_submit,
)
