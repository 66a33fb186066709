"""我的预约: the member's bookings, upcoming first, one opened with cancel (asked twice), reschedule and,
after the session, a one-tap rating; and the words typed back to a reminder ("取消预约 ZX7K2M9Q",
"评价 ZX7K2M9Q 5"), which work wherever the member is, since a reminder's buttons would be stale.

A booking is looked up by reference and shown only when it is this member's: a reference typed from
someone else's reminder opens nothing and says nothing about whether it exists.

Rescheduling asks for a new day and time and hands both bookings to `reschedule`, which secures the
new place before it lets the old one go, in one turn: a new time that filled up meanwhile leaves the
member with the booking they had.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.flows.book import (
    booked_words,
    calendar,
    is_free,
    kind_label,
    local_day,
    picked_day,
    show_days,
    show_times,
    slot_id,
    when_words,
)
from bot.services.booking import BookingRefused, cancel, rate, reschedule
from storage.bookings import Booking

BOOKED = "booked"
STARS = range(1, 6)
# Typed back to a reminder. Matched on the NFKC-folded, casefolded message; the reference is upper-cased.
CANCEL_WORDS = re.compile(r"(?:取消预约|cancel booking)\s*([0-9a-z]{6,12})")
RATE_WORDS = re.compile(r"(?:评价|打分|评分|rate)\s*([0-9a-z]{6,12})\s*[:：]?\s*([1-5])\s*(?:分|星|stars?)?")

flow = Flow(
    "my_bookings",
    commands=("mybookings",),
    words=("我的预约", "预约记录", "my bookings"),
    menu_label="book.my_menu",
    access=Access.members(refusal="book.join_first"),
)
# The words from reminders: no steps of its own, it hands over to 我的预约's.
replies = Flow(
    "booking_reply",
    patterns=(CANCEL_WORDS, RATE_WORDS),
    access=Access.members(refusal="book.join_first"),
)
pager = Pager("my_bookings")
days_pager = Pager("rebook_days")
times_pager = Pager("rebook_times")


async def _bookings(turn: Turn) -> list[Booking]:
    """Upcoming (still booked) soonest first, then the rest latest first."""
    member = await turn.member()
    if member is None:
        return []
    every = await turn.tx.bookings.for_member(member.id)
    upcoming = sorted((b for b in every if upcoming_(turn, b)), key=lambda b: b.start_at)
    past = sorted((b for b in every if not upcoming_(turn, b)), key=lambda b: b.start_at, reverse=True)
    return upcoming + past


def upcoming_(turn: Turn, booking: Booking) -> bool:
    return booking.status == BOOKED and booking.end_at > turn.now


def rateable(turn: Turn, booking: Booking) -> bool:
    """After the session, once it was held; a rating can be given again to change it."""
    return booking.status in (BOOKED, "done") and booking.end_at <= turn.now


async def _mine(turn: Turn, reference: str) -> Booking | None:
    member = await turn.member()
    booking = await turn.tx.bookings.by_reference(reference.upper()) if reference else None
    return booking if booking is not None and member is not None and booking.member_id == member.id else None


async def _kinds(turn: Turn, bookings: list[Booking]) -> dict[str, str]:
    """A booking row does not hold its kind; its slot does."""
    kinds = {}
    for b in bookings:
        slot = await turn.tx.bookings.slot(b.slot_id)
        kinds[b.reference] = slot.kind if slot else ""
    return kinds


def _summary(turn: Turn, b: Booking, kind: str) -> dict[str, object]:
    return {
        "reference": b.reference,
        "kind": kind_label(turn, kind),
        "when": when_words(turn, b.start_at),
        # Words of ours inside another sentence: rendered here.
        "status": turn.app.locale.render(turn.lang, T(f"booking.status_{b.status}")),
        "upcoming": upcoming_(turn, b),
        "rating": b.rating,
    }


@flow.start
async def start(turn: Turn, payload: str) -> None:
    if not await _bookings(turn):
        turn.say("book.none_yet")
        turn.finish()
        return
    turn.goto("list")


@flow.ask("list")
async def ask_list(turn: Turn) -> None:
    bookings = await _bookings(turn)
    kinds = await _kinds(turn, bookings)
    ahead = sum(1 for b in bookings if upcoming_(turn, b))
    turn.say("book.list", upcoming=ahead, past=len(bookings) - ahead)
    pager.show(
        turn, [Item(b.reference, T("book.list_button", **_summary(turn, b, kinds[b.reference]))) for b in bookings]
    )
    turn.button(T("book.back_to_menu"), "back")


@flow.on("list")
async def on_list(turn: Turn) -> None:
    if turn.choice == "back":
        turn.finish()
    elif (picked := pager.picked(turn)) is not None:
        if await _mine(turn, picked) is None:
            turn.retry("book.not_found")
            return
        turn.data["open"] = picked
        turn.goto("view")


@flow.ask("view")
async def ask_view(turn: Turn) -> None:
    booking = await _mine(turn, turn.data.get("open", ""))
    if booking is None:
        turn.say("book.not_found")
        turn.goto("list")
        await ask_list(turn)
        return
    slot = await turn.tx.bookings.slot(booking.slot_id)
    turn.say(
        "book.detail",
        **{**(booked_words(turn, booking, slot) if slot else {}), **_summary(turn, booking, slot.kind if slot else "")},
        rateable=rateable(turn, booking) and booking.rating is None,
    )
    if upcoming_(turn, booking):
        turn.button(T("book.cancel_this"), "cancel")
        turn.button(T("book.reschedule"), "move")
    if rateable(turn, booking) and booking.rating is None:
        for n in STARS:
            turn.button(T("book.star_button", stars=n), f"r:{n}")
    turn.button(T("book.back_to_list"), "list")
    turn.button(T("book.back_to_menu"), "back")


@flow.on("view")
async def on_view(turn: Turn) -> None:
    choice = turn.choice or ""
    booking = await _mine(turn, turn.data.get("open", ""))
    if choice == "list":
        turn.goto("list")
    elif choice == "back":
        turn.finish()
    elif booking is None:
        turn.say("book.not_found")
        turn.goto("list")
    elif choice == "cancel" and upcoming_(turn, booking):
        turn.goto("cancel")
    elif choice == "move" and upcoming_(turn, booking):
        turn.data["kind"] = (await _slot_kind(turn, booking)) or ""
        turn.data.pop(days_pager.key, None)
        turn.goto("move_day")
    elif choice.startswith("r:") and choice[2:].isdigit():
        await _rate(turn, booking, int(choice[2:]))
        turn.goto("view")
    else:
        turn.retry("engine.choose_option")


async def _slot_kind(turn: Turn, booking: Booking) -> str | None:
    slot = await turn.tx.bookings.slot(booking.slot_id)
    return slot.kind if slot else None


async def _rate(turn: Turn, booking: Booking, stars: int) -> None:
    if stars not in STARS or not rateable(turn, booking):
        turn.say("book.rating_not_now")
        return
    try:
        await rate(turn.tx, turn.app, booking.reference, stars, now=turn.now, member=await turn.member())
    except BookingRefused:
        turn.say("book.rating_not_now")
        return
    turn.say("book.rated", stars=stars)


# -- cancel ---------------------------------------------------------------------------------------------
@flow.ask("cancel")
async def ask_cancel(turn: Turn) -> None:
    booking = await _mine(turn, turn.data.get("open", ""))
    if booking is None or not upcoming_(turn, booking):
        turn.say("book.cannot_cancel")
        turn.goto("list")
        await ask_list(turn)
        return
    kind = await _slot_kind(turn, booking)
    turn.say("book.ask_cancel", kind=kind_label(turn, kind or ""), when=when_words(turn, booking.start_at))
    turn.button(T("book.cancel_yes"), "yes")
    turn.button(T("book.cancel_no"), "no")


@flow.on("cancel")
async def on_cancel(turn: Turn) -> None:
    if turn.choice == "no":
        turn.say("book.kept")
        turn.goto("view")
        return
    if turn.choice != "yes":
        turn.retry("book.choose_yes_no")
        return
    try:
        await _cancel(turn, turn.data.get("open", ""))
    except BookingRefused:
        turn.say("book.cannot_cancel")
        turn.goto("list")
        return
    turn.finish()


async def _cancel(turn: Turn, reference: str) -> None:
    member = await turn.member()
    booking = await cancel(turn.tx, turn.app, reference, by="member", now=turn.now, member=member)
    turn.say("book.cancelled", reference=booking.reference, when=when_words(turn, booking.start_at))


# -- reschedule -----------------------------------------------------------------------------------------
@flow.ask("move_day")
async def ask_move_day(turn: Turn) -> None:
    if not await show_days(turn, turn.data.get("kind", ""), days_pager, "book.ask_move_day"):
        turn.button(T("book.keep_booking"), "keep")
        return
    turn.button(T("book.keep_booking"), "keep")


@flow.on("move_day")
async def on_move_day(turn: Turn) -> None:
    if turn.choice == "keep":
        turn.say("book.kept")
        turn.goto("view")
        return
    day = await picked_day(turn, turn.data.get("kind", ""), days_pager)
    if day is None:
        return
    turn.data["day"] = day.isoformat()
    turn.data.pop(times_pager.key, None)
    turn.goto("move_time")


@flow.ask("move_time")
async def ask_move_time(turn: Turn) -> None:
    kind, day = turn.data.get("kind", ""), date.fromisoformat(turn.data["day"])
    if not await show_times(turn, kind, day, times_pager, "book.ask_move_time"):
        turn.say("book.day_full")
        turn.goto("move_day")
        await ask_move_day(turn)
        return
    turn.button(T("book.other_day"), "days")
    turn.button(T("book.keep_booking"), "keep")


@flow.on("move_time")
async def on_move_time(turn: Turn) -> None:
    if turn.choice == "keep":
        turn.say("book.kept")
        turn.goto("view")
        return
    if turn.choice == "days":
        turn.goto("move_day")
        return
    picked = slot_id(times_pager.picked(turn))
    if picked is None:
        return
    slot = await turn.tx.bookings.slot(picked)
    if slot is None or slot.kind != turn.data.get("kind"):
        turn.retry("engine.choose_option")
        return
    if not await is_free(turn, slot.kind, slot):
        turn.retry("book.move_taken", when=when_words(turn, slot.start_at))
        return
    try:
        member = await turn.member()
        booking = await reschedule(turn.tx, turn.app, turn.data.get("open", ""), picked, now=turn.now, member=member)
    except BookingRefused as e:
        if e.reason == "taken":
            turn.retry("book.move_taken", when=when_words(turn, slot.start_at))
        elif e.reason == "overlap":
            turn.retry("book.refused_overlap")
        elif e.reason in ("too_soon", "too_far"):
            turn.retry(f"book.refused_{e.reason}")
        else:
            turn.say("book.cannot_cancel")
            turn.goto("view")
        return
    new_slot = await turn.tx.bookings.slot(booking.slot_id)
    turn.data["open"] = booking.reference
    turn.data["day"] = local_day(turn, booking.start_at).isoformat()
    if new_slot is not None:
        turn.say("book.moved", **booked_words(turn, booking, new_slot))
        calendar(turn, booking, new_slot)
    turn.goto("view")


# -- the words typed back to a reminder ---------------------------------------------------------------
@replies.start
async def reply_start(turn: Turn, payload: str) -> None:
    folded = unicodedata.normalize("NFKC", turn.text).strip().casefold()
    if m := RATE_WORDS.fullmatch(folded):
        booking = await _mine(turn, m.group(1))
        if booking is None:
            turn.say("book.not_found")
            turn.finish()
            return
        await _rate(turn, booking, int(m.group(2)))
        turn.finish()
    elif m := CANCEL_WORDS.fullmatch(folded):
        booking = await _mine(turn, m.group(1))
        if booking is None:
            turn.say("book.not_found")
            turn.finish()
            return
        # The reminder promised that this message cancels: no second question.
        try:
            await _cancel(turn, booking.reference)
        except BookingRefused:
            turn.say("book.cannot_cancel")
            turn.data["open"] = booking.reference
            turn.goto("view", "my_bookings")
            return
        turn.finish()
    else:
        turn.finish()
