"""预约咨询: kind -> day -> time -> how (at a station, by phone, by video) -> an optional topic -> check ->
booked, with the reference, the time, the place and a calendar file.

Only free times are offered (`bot.services.booking` leaves out the past, the minimum notice and the
horizon), but a place shown can be gone by the time it is tapped: then the member hears it was just
taken and gets the next free times at once, never a dead end. Nothing is written before the check is
confirmed, and the booking itself is one conditional statement in the service, so two riders tapping
the last place at the same instant cannot both have it.

The topic is encrypted in the session the moment it arrives, as join does with the phone: for a
psychological consultation it can be something a rider tells no one else.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Any

from bot.config import ConsultKind
from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.engine.substeps import today_of
from bot.services.booking import BookingRefused, book, day_words, free_days, free_times, ics, local_time
from bot.services.booking import local_day as service_local_day
from storage.bookings import Booking, Slot

TOPIC_MAX = 100
NEXT_TIMES = 6  # offered at once when a time was just taken: enough choice, still one screen
SKIP = "skip"

flow = Flow(
    "book",
    commands=("book",),
    words=("预约", "咨询", "预约咨询", "book", "book a consultation"),
    menu_label="book.menu",
    access=Access.members(refusal="book.join_first"),
)
days_pager = Pager("book_days")
times_pager = Pager("book_times")


# -- shared with 我的预约 ----------------------------------------------------------------------------
def kind_label(turn: Turn, kind_id: str) -> str:
    kind = turn.app.profile.consult_kind(kind_id)
    return kind.label(turn.lang) if kind else kind_id


def station_name(turn: Turn, station: str | None) -> str | None:
    stations = turn.app.profile.stations
    if station is None or not station.isdigit() or int(station) >= len(stations):
        return None
    return stations[int(station)].name(turn.lang)


def station_address(turn: Turn, station: str | None) -> str | None:
    stations = turn.app.profile.stations
    if station is None or not station.isdigit() or int(station) >= len(stations):
        return None
    return stations[int(station)].address(turn.lang)


def local_day(turn: Turn, when: datetime) -> date:
    return service_local_day(turn.app, when)


def when_words(turn: Turn, start_at: datetime) -> str:
    """ "明天 14:00", "周三 12月3日 14:00": the way a rider says it."""
    day = day_words(turn.app, local_day(turn, start_at), today_of(turn), turn.lang)
    return f"{day} {local_time(turn.app, start_at)}"


def place(turn: Turn, mode: str, station: str | None) -> dict[str, Any]:
    """What the member is told about where: the station's name and address, or by phone / video."""
    return {"mode": mode, "station": station_name(turn, station), "address": station_address(turn, station)}


def time_button(turn: Turn, slot: Slot, *, with_day: bool = False) -> T:
    when = when_words(turn, slot.start_at) if with_day else local_time(turn.app, slot.start_at)
    return T("book.time_button", when=when, station=station_name(turn, slot.station))


async def next_free(turn: Turn, kind: str, limit: int = NEXT_TIMES) -> list[Slot]:
    """The next free times of `kind`, across days, soonest first."""
    found: list[Slot] = []
    for day in await free_days(turn.tx, turn.app, kind, turn.now):
        found += await free_times(turn.tx, turn.app, kind, day, turn.now)
        if len(found) >= limit:
            break
    return found[:limit]


async def show_days(turn: Turn, kind: str, pager: Pager, prompt: str) -> bool:
    """The days with free times as buttons; False (and says so) when there are none."""
    days = await free_days(turn.tx, turn.app, kind, turn.now)
    if not days:
        turn.say("book.no_days", kind=kind_label(turn, kind))
        return False
    today = today_of(turn)
    turn.say(prompt, kind=kind_label(turn, kind))
    pager.show(turn, [Item(d.isoformat(), day_words(turn.app, d, today, turn.lang)) for d in days])
    return True


async def picked_day(turn: Turn, kind: str, pager: Pager) -> date | None:
    """The day pressed (or typed as its label), if it still has free times; else the step is asked again."""
    picked = pager.picked(turn)
    if picked is None:
        return None
    try:
        day = date.fromisoformat(picked)
    except ValueError:
        turn.retry("engine.choose_option")
        return None
    if day not in await free_days(turn.tx, turn.app, kind, turn.now):
        turn.retry("book.day_gone")
        return None
    return day


async def show_times(turn: Turn, kind: str, day: date, pager: Pager, prompt: str) -> bool:
    slots = await free_times(turn.tx, turn.app, kind, day, turn.now)
    if not slots:
        return False
    words = day_words(turn.app, day, today_of(turn), turn.lang)
    turn.say(prompt, day=words, kind=kind_label(turn, kind))
    pager.show(turn, [Item(str(s.id), time_button(turn, s)) for s in slots])
    return True


def slot_id(picked: str | None) -> int | None:
    return int(picked) if picked is not None and picked.isdigit() else None


async def is_free(turn: Turn, kind: str, slot: Slot) -> bool:
    """Still offered: of this kind, free, and inside the notice and horizon."""
    offered = await free_times(turn.tx, turn.app, kind, local_day(turn, slot.start_at), turn.now)
    return any(s.id == slot.id for s in offered)


def calendar(turn: Turn, booking: Booking, slot: Slot) -> None:
    turn.document(f"{booking.reference}.ics", ics(turn.app, booking, slot, turn.lang))


def booked_words(turn: Turn, booking: Booking, slot: Slot) -> dict[str, Any]:
    return {
        "reference": booking.reference,
        "kind": kind_label(turn, slot.kind),
        "when": when_words(turn, slot.start_at),
        "end": local_time(turn.app, slot.end_at),
        **place(turn, booking.mode, booking.station),
    }


# -- start and kind -----------------------------------------------------------------------------------
@flow.start
async def start(turn: Turn, payload: str) -> None:
    kinds = turn.app.profile.consult_kinds
    if not kinds:
        turn.say("book.no_kinds")
        turn.finish()
        return
    turn.say("book.welcome")
    if len(kinds) == 1:
        turn.data["kind"] = kinds[0].id
        turn.goto("day")
    else:
        turn.goto("kind")


@flow.ask("kind")
async def ask_kind(turn: Turn) -> None:
    kinds = turn.app.profile.consult_kinds
    turn.say(
        "book.ask_kind",
        kinds=[{"label": k.label(turn.lang), "minutes": k.duration_minutes} for k in kinds],
    )
    for k in kinds:
        turn.button(k.label(turn.lang), f"k:{k.id}")


@flow.on("kind")
async def on_kind(turn: Turn) -> None:
    choice = turn.choice or ""
    kind = turn.app.profile.consult_kind(choice.removeprefix("k:")) if choice.startswith("k:") else None
    if kind is None:
        turn.retry("book.choose_kind")
        return
    turn.data.clear()
    turn.data["kind"] = kind.id
    turn.goto("day")


def current_kind(turn: Turn) -> ConsultKind | None:
    return turn.app.profile.consult_kind(turn.data.get("kind", ""))


# -- day and time -------------------------------------------------------------------------------------
@flow.ask("day")
async def ask_day(turn: Turn) -> None:
    kind = turn.data.get("kind", "")
    if not await show_days(turn, kind, days_pager, "book.ask_day"):
        if len(turn.app.profile.consult_kinds) > 1:
            turn.button(T("book.other_kind"), "kinds")
    elif len(turn.app.profile.consult_kinds) > 1:
        turn.button(T("book.other_kind"), "kinds")


@flow.on("day")
async def on_day(turn: Turn) -> None:
    if turn.choice == "kinds":
        turn.goto("kind")
        return
    day = await picked_day(turn, turn.data.get("kind", ""), days_pager)
    if day is None:
        return
    turn.data["day"] = day.isoformat()
    turn.data.pop(times_pager.key, None)
    turn.goto("time")


@flow.ask("time")
async def ask_time(turn: Turn) -> None:
    kind, day = turn.data.get("kind", ""), date.fromisoformat(turn.data["day"])
    if not await show_times(turn, kind, day, times_pager, "book.ask_time"):
        # Filled up since the day was shown: straight to the other days, not a blank list.
        turn.say("book.day_full")
        turn.goto("day")
        await ask_day(turn)
        return
    turn.button(T("book.other_day"), "days")


@flow.on("time")
async def on_time(turn: Turn) -> None:
    if turn.choice == "days":
        turn.goto("day")
        return
    picked = slot_id(times_pager.picked(turn))
    if picked is None:
        return
    await take_slot(turn, picked)


async def take_slot(turn: Turn, picked: int) -> None:
    """A time was picked: on to how, or "just taken" and the next free times if it is gone."""
    kind = turn.data.get("kind", "")
    slot = await turn.tx.bookings.slot(picked)
    if slot is None or slot.kind != kind:
        turn.retry("engine.choose_option")
        return
    if not await is_free(turn, kind, slot):
        turn.repeat = False
        turn.say("book.just_taken", when=when_words(turn, slot.start_at))
        turn.goto("next_times")
        return
    turn.data["slot"] = slot.id
    turn.data["day"] = local_day(turn, slot.start_at).isoformat()
    modes = modes_for(current_kind(turn), slot)
    if turn.data.get("mode") not in modes:
        turn.data.pop("mode", None)
        turn.data.pop("station", None)
    if len(modes) == 1:
        choose_mode(turn, modes[0], slot)
    await after_mode(turn)


# -- just taken: the next free times, right there ------------------------------------------------------
@flow.ask("next_times")
async def ask_next_times(turn: Turn) -> None:
    slots = await next_free(turn, turn.data.get("kind", ""))
    if not slots:
        turn.say("book.no_days", kind=kind_label(turn, turn.data.get("kind", "")))
        if len(turn.app.profile.consult_kinds) > 1:
            turn.button(T("book.other_kind"), "kinds")
        return
    turn.say("book.next_times")
    for s in slots:
        turn.button(time_button(turn, s, with_day=True), f"s:{s.id}")


@flow.on("next_times")
async def on_next_times(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "kinds":
        turn.goto("kind")
    elif choice.startswith("s:") and (picked := slot_id(choice[2:])) is not None:
        await take_slot(turn, picked)
    else:
        turn.retry("book.choose_time")


# -- how: at a station, by phone, by video ----------------------------------------------------------
def modes_for(kind: ConsultKind | None, slot: Slot) -> list[str]:
    """The ways this slot can be had: in person only where it is at a station; a slot published for
    the phone (or video) alone is had that way only."""
    modes = kind.modes if kind else ()
    at_station = slot.station is not None and slot.station.isdigit()
    if slot.station is not None and not at_station:
        return [m for m in modes if m == slot.station]
    return [m for m in modes if m != "station" or at_station]


def choose_mode(turn: Turn, mode: str, slot: Slot) -> None:
    turn.data["mode"] = mode
    turn.data["station"] = slot.station if mode == "station" else None


@flow.ask("mode")
async def ask_mode(turn: Turn) -> None:
    slot = await turn.tx.bookings.slot(turn.data.get("slot", 0))
    if slot is None:
        turn.say("book.just_taken_unknown")
        turn.goto("next_times")
        await ask_next_times(turn)
        return
    turn.say("book.ask_mode", when=when_words(turn, slot.start_at))
    for m in modes_for(current_kind(turn), slot):
        turn.button(T(f"book.mode_button_{m}", station=station_name(turn, slot.station)), f"m:{m}")


@flow.on("mode")
async def on_mode(turn: Turn) -> None:
    slot = await turn.tx.bookings.slot(turn.data.get("slot", 0))
    mode = (turn.choice or "").removeprefix("m:")
    if slot is None or not (turn.choice or "").startswith("m:") or mode not in modes_for(current_kind(turn), slot):
        turn.retry("book.choose_mode")
        return
    choose_mode(turn, mode, slot)
    await after_mode(turn)


async def after_mode(turn: Turn) -> None:
    if "mode" not in turn.data:
        turn.goto("mode")
    elif "topic_done" not in turn.data:
        turn.goto("topic")
    else:
        turn.goto("confirm")


# -- an optional topic ---------------------------------------------------------------------------------
@flow.ask("topic")
async def ask_topic(turn: Turn) -> None:
    kind = current_kind(turn)
    note = kind.topic_note(turn.lang) if kind and kind.topic_note else None
    turn.say("book.ask_topic", note=note, most=TOPIC_MAX)
    turn.button(T("book.skip_topic"), SKIP)


@flow.on("topic")
async def on_topic(turn: Turn) -> None:
    if turn.choice == SKIP:
        turn.data.pop("topic_enc", None)
    elif turn.text:
        text = " ".join(unicodedata.normalize("NFC", turn.text).split())
        if len(text) > TOPIC_MAX:
            turn.retry("book.topic_long", most=TOPIC_MAX, got=len(text))
            return
        turn.data["topic_enc"] = turn.app.keyring.encrypt(text)
    else:
        turn.retry("book.topic_hint")
        return
    turn.data["topic_done"] = True
    turn.goto("confirm")


# -- check and book -------------------------------------------------------------------------------------
@flow.ask("confirm")
async def ask_confirm(turn: Turn) -> None:
    slot = await turn.tx.bookings.slot(turn.data.get("slot", 0))
    kind = current_kind(turn)
    if slot is None or kind is None:
        turn.say("book.just_taken_unknown")
        turn.goto("next_times")
        await ask_next_times(turn)
        return
    topic = turn.app.keyring.decrypt(turn.data["topic_enc"]) if turn.data.get("topic_enc") else None
    turn.say(
        "book.summary",
        kind=kind.label(turn.lang),
        when=when_words(turn, slot.start_at),
        end=local_time(turn.app, slot.end_at),
        minutes=kind.duration_minutes,
        topic=topic,
        **place(turn, turn.data["mode"], turn.data.get("station")),
    )
    turn.button(T("book.confirm"), "book")
    turn.button(T("book.change_time"), "days")
    if len(modes_for(kind, slot)) > 1:
        turn.button(T("book.change_mode"), "mode")
    turn.button(T("book.change_topic"), "topic")
    turn.button(T("book.give_up"), "quit")


@flow.on("confirm")
async def on_confirm(turn: Turn) -> None:
    if turn.choice == "days":
        turn.goto("day")
    elif turn.choice == "mode":
        turn.goto("mode")
    elif turn.choice == "topic":
        turn.goto("topic")
    elif turn.choice == "quit":
        turn.say("book.given_up")
        turn.finish()
    elif turn.choice == "book":
        await _book(turn)
    else:
        turn.retry("engine.choose_option")


REFUSED = {
    "overlap": "book.refused_overlap",
    "too_soon": "book.refused_too_soon",
    "too_far": "book.refused_too_far",
    "cancelled_slot": "book.refused_cancelled_slot",
}


async def _book(turn: Turn) -> None:
    member = await turn.member()
    if member is None:  # left on another channel meanwhile; access stops the flow at the next message
        turn.say("roles.member_gone")
        turn.finish()
        return
    d = turn.data
    topic = turn.app.keyring.decrypt(d["topic_enc"]) if d.get("topic_enc") else None
    try:
        booking = await book(
            turn.tx, turn.app, member, d["slot"], mode=d["mode"], station=d.get("station"), topic=topic, now=turn.now
        )
    except BookingRefused as e:
        if e.reason in ("taken", "not_found", "cancelled_slot"):
            slot = await turn.tx.bookings.slot(d["slot"])
            if slot is not None and e.reason == "taken":
                turn.say("book.just_taken", when=when_words(turn, slot.start_at))
            else:
                turn.say("book.just_taken_unknown")
            turn.goto("next_times")
        else:
            turn.retry(REFUSED.get(e.reason, "book.refused_other"))
        return
    slot = await turn.tx.bookings.slot(booking.slot_id)
    if slot is not None:
        turn.say("book.booked", **booked_words(turn, booking, slot))
        calendar(turn, booking, slot)
    turn.finish()
