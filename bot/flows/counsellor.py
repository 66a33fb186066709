"""The counsellor's tools in the staff menu (counsellors and admin): publishing free times (发布时段) and
their own upcoming consultations (我的咨询), where a booking can be cancelled or marked a no-show.

Publishing asks one thing a message, the way it is said at a desk: which kind, where, which day, from
what time, how many sessions, how far apart, how many people each; then shows every slot that will be
made and makes them only once the counsellor confirms. A time inside the minimum notice is refused
before the preview and again at the confirmation (the clock moves while someone types).

A counsellor sees the member's name and phone of their own bookings only: a booking is looked up by its
slot's counsellor every time it is shown or acted on, so a reference typed from elsewhere opens nothing.
An admin sees every counsellor's bookings.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import ConsultKind
from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import Outgoing, T
from bot.engine.paging import Item, Pager
from bot.engine.substeps import today_of
from bot.services.booking import BookingRefused, cancel, day_words, local_time, mark_no_show
from bot.services.outbox import enqueue
from bot.validation import calendar_date
from storage.bookings import Booking, Slot
from storage.staff import ADMIN

publish = Flow("publish_slots", commands=("slots",), access=Access.staff("counsellor", tool="counsellor.publish_tool"))
mine = Flow("my_consults", commands=("consults",), access=Access.staff("counsellor", tool="counsellor.mine_tool"))

COUNT_MAX = 12  # sessions in one go: a long afternoon of 45-minute sessions
CAPACITY_MAX = 30  # a group session in a rest station's room
EVERY_MAX = 240
DAYS_SHOWN = 7  # day buttons; any later day is typed or picked
DAYS_AHEAD_MAX = 366
REASON_MAX = 200  # the reason reaches the member in a chat message
# Bookings that began up to this long ago stay listed, so a no-show can still be marked that day.
LISTED_SINCE = timedelta(hours=12)
_KIND, _WHERE, _DAY, _COUNT, _CAP, _EVERY, _REASON = "kind:", "where:", "day:", "count:", "cap:", "every:", "r:"
REASONS = ("sick", "urgent")  # ready-made reasons for cancelling, besides one typed
REMOTE = ("phone", "video")  # a slot's "station" when it is held at none
_STAFF = "staff"
consults_pager = Pager("consults")


async def _to_staff_menu(turn: Turn) -> bool:
    if turn.choice == _STAFF:
        await turn.begin("staff")
        return True
    return False


def _back_button(turn: Turn) -> None:
    turn.button(T("counsellor.to_staff_menu"), _STAFF)


def _zone(turn: Turn) -> ZoneInfo:
    return ZoneInfo(turn.app.profile.timezone)


def _kind(turn: Turn) -> ConsultKind | None:
    kind_id = turn.data.get("kind")
    return turn.app.profile.consult_kind(kind_id) if isinstance(kind_id, str) else None


def _kind_label(turn: Turn, kind_id: str) -> str:
    return _kind_label_in(turn, kind_id, turn.lang)


def _kind_label_in(turn: Turn, kind_id: str, lang: str) -> str:
    kind = turn.app.profile.consult_kind(kind_id)
    return str(kind.label(lang)) if kind else kind_id


def _station_name(turn: Turn, station: str | None) -> str | None:
    stations = turn.app.profile.stations
    if station is None or not station.isdigit() or int(station) >= len(stations):
        return None
    return stations[int(station)].name(turn.lang)


def _digits(raw: str) -> str:
    return "".join(unicodedata.normalize("NFKC", raw or "").split()).casefold()


_CN_NUMBERS = {w: i for i, w in enumerate("一 二 三 四 五 六 七 八 九 十 十一 十二".split(), start=1)} | {"两": 2}


def whole_number(raw: str) -> int | None:
    """ "4", "４", "4个", "四", "十二" -> the number; None if not one."""
    text = re.sub(r"(个|场|次|人|位|名|节)$", "", _digits(raw))
    if text.isdigit() and len(text) <= 4:
        return int(text)
    return _CN_NUMBERS.get(text)


_CLOCK = re.compile(r"(上午|早上|中午|下午|晚上)?(\d{1,2})(?:(?::|点|时)(\d{2}|半)?分?)?(am|pm)?")


def clock_time(raw: str) -> time | None:
    """ "14:00", "14：30", "14点", "下午2点", "下午2点半", "2pm" -> that time of day; None if not one."""
    m = _CLOCK.fullmatch(_digits(raw))
    if not m:
        return None
    part, hour, minute, ampm = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    minutes = 30 if minute == "半" else int(minute or 0)
    if part in ("下午", "晚上") or ampm == "pm" or (part == "中午" and hour < 11):
        hour += 12 if hour < 12 else 0
    elif ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minutes > 59:
        return None
    return time(hour, minutes)


_MINUTES = re.compile(r"(\d{1,3}(?:\.\d)?)(分钟|分|min|mins|minutes|m|小时|个小时|钟头|h|hour|hours)?")


def minutes_of(raw: str) -> int | None:
    """ "45", "45分钟", "1小时", "1.5小时", "90min" -> minutes; None if not a length of time."""
    m = _MINUTES.fullmatch(_digits(raw))
    if not m:
        return None
    amount, unit = float(m.group(1)), m.group(2) or "分钟"
    hours = unit in ("小时", "个小时", "钟头", "h", "hour", "hours")
    return round(amount * 60) if hours else (round(amount) if amount == int(amount) else None)


# -- publishing: kind ----------------------------------------------------------------------------------
@publish.start
async def start_publish(turn: Turn, payload: str) -> None:
    turn.goto("kind")


@publish.ask("kind")
async def ask_kind(turn: Turn) -> None:
    kinds = turn.app.profile.consult_kinds
    turn.say("counsellor.ask_kind" if kinds else "counsellor.no_kinds")
    for kind in kinds:
        turn.button(T("counsellor.kind_button", label=kind.label(turn.lang), minutes=kind.duration_minutes),
                    _KIND + kind.id)  # fmt: skip
    _back_button(turn)


@publish.on("kind")
async def on_kind(turn: Turn) -> None:
    if await _to_staff_menu(turn):
        return
    choice = turn.choice or ""
    if choice.startswith(_KIND) and turn.app.profile.consult_kind(choice[len(_KIND) :]):
        turn.data.clear()  # a new batch: nothing of an earlier one carries over
        turn.data["kind"] = choice[len(_KIND) :]
        turn.goto("where")
    else:
        turn.retry("counsellor.choose_kind")


# -- where ----------------------------------------------------------------------------------------------
def _places(turn: Turn, kind: ConsultKind) -> list[tuple[str, T]]:
    """Where a session of `kind` can be held: each station (by its index), "phone", "video"."""
    places: list[tuple[str, T]] = []
    if "station" in kind.modes:
        for i, station in enumerate(turn.app.profile.stations):
            places.append((str(i), T("counsellor.at_station", name=station.name(turn.lang))))
    places += [(mode, T(f"counsellor.by_{mode}")) for mode in REMOTE if mode in kind.modes]
    return places


@publish.ask("where")
async def ask_where(turn: Turn) -> None:
    kind = _kind(turn)
    if kind is None:
        turn.say("counsellor.kind_gone")
        turn.button(T("counsellor.start_over"), "over")
        return
    turn.say("counsellor.ask_where", kind=kind.label(turn.lang))
    for payload, label in _places(turn, kind):
        turn.button(label, _WHERE + payload)
    turn.button(T("counsellor.back"), "back")


@publish.on("where")
async def on_where(turn: Turn) -> None:
    kind = _kind(turn)
    choice = turn.choice or ""
    if turn.choice in ("back", "over") or kind is None:
        turn.goto("kind")
    elif choice.startswith(_WHERE) and choice[len(_WHERE) :] in dict(_places(turn, kind)):
        turn.data["station"] = choice[len(_WHERE) :]
        turn.goto("day")
    else:
        turn.retry("counsellor.choose_where")


def _where_label(turn: Turn, station: str | None) -> T:
    if station in REMOTE:
        return T(f"counsellor.by_{station}")
    return T("counsellor.at_station", name=_station_name(turn, station) or "?")


# -- day ------------------------------------------------------------------------------------------------
_AHEAD = {"今天": 0, "今日": 0, "today": 0, "明天": 1, "明日": 1, "tomorrow": 1, "后天": 2}


@publish.ask("day")
async def ask_day(turn: Turn) -> None:
    today = today_of(turn)
    turn.say("counsellor.ask_day")
    for ahead in range(DAYS_SHOWN):
        day = today + timedelta(days=ahead)
        turn.button(day_words(turn.app, day, today, turn.lang), _DAY + day.isoformat())
    turn.button(T("counsellor.other_day"), "other")
    turn.button(T("counsellor.back"), "back")


@publish.on("day")
async def on_day(turn: Turn) -> None:
    today = today_of(turn)
    choice = turn.choice or ""
    day: date | None = None
    if turn.returned == "pick_date" and isinstance(turn.result, str):
        day = date.fromisoformat(turn.result)
    elif choice == "back":
        turn.goto("where")
        return
    elif choice == "other":
        await turn.call("pick_date", then="day", prompt="counsellor.ask_other_day", not_before=today.isoformat())
        return
    elif choice.startswith(_DAY):
        try:
            day = date.fromisoformat(choice[len(_DAY) :])
        except ValueError:
            day = None
    elif turn.choice is None:
        typed = _digits(turn.text)
        day = today + timedelta(_AHEAD[typed]) if typed in _AHEAD else calendar_date(turn.text, today)
    if day is None:
        turn.retry("counsellor.day_invalid")
    elif day < today:
        turn.retry("counsellor.day_past")
    elif (day - today).days > DAYS_AHEAD_MAX:
        turn.retry("counsellor.day_too_far")
    else:
        turn.data["day"] = day.isoformat()
        turn.goto("start")


# -- start time -----------------------------------------------------------------------------------------
def _earliest(turn: Turn) -> datetime:
    return turn.now + timedelta(minutes=turn.app.settings.booking_min_notice_minutes)


def _first_start(turn: Turn, at: time) -> datetime:
    day = date.fromisoformat(turn.data["day"])
    return datetime.combine(day, at, _zone(turn)).astimezone(ZoneInfo("UTC"))


def _too_soon(turn: Turn, first: datetime) -> T | None:
    """Why a first session starting at `first` cannot be published, or None when it can."""
    earliest = _earliest(turn)
    if first >= earliest:
        return None
    today = today_of(turn)
    local = earliest.astimezone(_zone(turn))
    return T(
        "counsellor.too_soon",
        minutes=turn.app.settings.booking_min_notice_minutes,
        day=day_words(turn.app, local.date(), today, turn.lang),
        time=local_time(turn.app, earliest),
    )


@publish.ask("start")
async def ask_start(turn: Turn) -> None:
    today = today_of(turn)
    day = date.fromisoformat(turn.data["day"])
    turn.say("counsellor.ask_start", day=day_words(turn.app, day, today, turn.lang))
    turn.button(T("counsellor.back"), "back")


@publish.on("start")
async def on_start(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("day")
        return
    at = clock_time(turn.text) if turn.choice is None else None
    if at is None:
        turn.retry("counsellor.start_invalid")
        return
    refused = _too_soon(turn, _first_start(turn, at))
    if refused is not None:
        turn.retry(refused.key, **refused.context)
        return
    turn.data["start"] = at.strftime("%H:%M")
    turn.goto("count")


# -- how many, how far apart, how many people -----------------------------------------------------------
@publish.ask("count")
async def ask_count(turn: Turn) -> None:
    turn.say("counsellor.ask_count", most=COUNT_MAX)
    for n in (1, 2, 3, 4, 6, 8):
        turn.button(str(n), _COUNT + str(n))
    turn.button(T("counsellor.back"), "back")


@publish.on("count")
async def on_count(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        turn.goto("start")
        return
    n = int(choice[len(_COUNT) :]) if choice.startswith(_COUNT) else whole_number(turn.text) if not choice else None
    if n is None or not 1 <= n <= COUNT_MAX:
        turn.retry("counsellor.count_invalid", most=COUNT_MAX)
        return
    turn.data["count"] = n
    if n == 1:  # one session: no gap to ask about
        turn.data["every"] = None
        turn.goto("capacity")
    else:
        turn.goto("every")


@publish.ask("every")
async def ask_every(turn: Turn) -> None:
    kind = _kind(turn)
    duration = kind.duration_minutes if kind else 0
    turn.say("counsellor.ask_every", duration=duration)
    turn.button(T("counsellor.every_default", minutes=duration), _EVERY + str(duration))
    for extra in (15, 30):
        turn.button(T("counsellor.every_button", minutes=duration + extra), _EVERY + str(duration + extra))
    turn.button(T("counsellor.back"), "back")


@publish.on("every")
async def on_every(turn: Turn) -> None:
    choice = turn.choice or ""
    kind = _kind(turn)
    if choice == "back" or kind is None:
        turn.goto("count" if kind else "kind")
        return
    every = (
        int(choice[len(_EVERY) :])
        if choice.startswith(_EVERY) and choice[len(_EVERY) :].isdigit()
        else minutes_of(turn.text)
        if not choice
        else None
    )
    if every is None or every > EVERY_MAX:
        turn.retry("counsellor.every_invalid", most=EVERY_MAX)
    elif every < kind.duration_minutes:  # one counsellor, two sessions at once
        turn.retry("counsellor.every_too_short", duration=kind.duration_minutes)
    else:
        turn.data["every"] = every
        turn.goto("capacity")


@publish.ask("capacity")
async def ask_capacity(turn: Turn) -> None:
    turn.say("counsellor.ask_capacity", most=CAPACITY_MAX)
    turn.button(T("counsellor.one_to_one"), _CAP + "1")
    turn.button(T("counsellor.back"), "back")


@publish.on("capacity")
async def on_capacity(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        turn.goto("every" if turn.data.get("every") else "count")
        return
    n = int(choice[len(_CAP) :]) if choice.startswith(_CAP) else whole_number(turn.text) if not choice else None
    if n is None or not 1 <= n <= CAPACITY_MAX:
        turn.retry("counsellor.capacity_invalid", most=CAPACITY_MAX)
        return
    turn.data["capacity"] = n
    turn.goto("preview")


# -- preview and publishing -----------------------------------------------------------------------------
def _starts(turn: Turn) -> list[datetime]:
    first = _first_start(turn, time.fromisoformat(turn.data["start"]))
    every = timedelta(minutes=turn.data.get("every") or 0)
    return [first + every * i for i in range(int(turn.data["count"]))]


def _batch_ready(turn: Turn) -> bool:
    return _kind(turn) is not None and all(k in turn.data for k in ("day", "start", "count", "capacity"))


async def _clashes(turn: Turn, starts: list[datetime], length: timedelta) -> list[Slot]:
    """This counsellor's own published times that the new ones would overlap."""
    mine_now = await turn.tx.bookings.slots(since=starts[0] - timedelta(days=1), counsellor=turn.user_key)
    return [
        s
        for s in mine_now
        if not s.cancelled and any(s.start_at < start + length and start < s.end_at for start in starts)
    ]


def _slot_line(turn: Turn, start: datetime, end: datetime) -> dict[str, str]:
    today = today_of(turn)
    return {
        "day": day_words(turn.app, start.astimezone(_zone(turn)).date(), today, turn.lang),
        "start": local_time(turn.app, start),
        "end": local_time(turn.app, end),
    }


@publish.ask("preview")
async def ask_preview(turn: Turn) -> None:
    kind = _kind(turn)
    if kind is None or not _batch_ready(turn):
        turn.say("counsellor.kind_gone")
        turn.button(T("counsellor.start_over"), "over")
        return
    length = timedelta(minutes=kind.duration_minutes)
    starts = _starts(turn)
    clashes = await _clashes(turn, starts, length)
    turn.say(
        "counsellor.preview",
        kind=kind.label(turn.lang),
        where=turn.app.locale.render(turn.lang, _where_label(turn, turn.data.get("station"))),
        capacity=turn.data["capacity"],
        slots=[_slot_line(turn, s, s + length) for s in starts],
        clashes=[_slot_line(turn, s.start_at, s.end_at) for s in clashes],
    )
    if not clashes:
        turn.button(T("counsellor.publish_yes"), "yes")
    turn.button(T("counsellor.change_start"), "start")
    turn.button(T("counsellor.start_over"), "over")
    _back_button(turn)


@publish.on("preview")
async def on_preview(turn: Turn) -> None:
    if await _to_staff_menu(turn):
        return
    choice = turn.choice
    if choice == "over" or not _batch_ready(turn):
        turn.goto("kind")
    elif choice == "start":
        turn.goto("start")
    elif choice == "yes":
        await _publish(turn)
    else:
        turn.retry("engine.choose_option")


async def _publish(turn: Turn) -> None:
    kind = _kind(turn)
    assert kind is not None  # checked by the caller
    starts = _starts(turn)
    refused = _too_soon(turn, starts[0])
    if refused is not None:  # time went by while the preview was open
        turn.say(refused.key, **refused.context)
        turn.goto("start")
        return
    length = timedelta(minutes=kind.duration_minutes)
    if await _clashes(turn, starts, length):
        turn.retry()  # published meanwhile (another device): the preview shows what clashes
        return
    slots = await turn.tx.bookings.add_slots(
        kind=kind.id,
        counsellor=turn.user_key,
        station=turn.data.get("station"),
        starts=starts,
        duration=length,
        capacity=int(turn.data["capacity"]),
        now=turn.now,
    )
    await turn.tx.audit.record(turn.now, turn.user_key, "slots.published", ",".join(str(s.id) for s in slots))
    turn.say("counsellor.published", count=len(slots), kind=kind.label(turn.lang))
    turn.goto("published")


@publish.ask("published")
async def ask_published(turn: Turn) -> None:
    turn.button(T("counsellor.publish_more"), "more")
    turn.button(T("counsellor.mine_tool"), "mine")
    _back_button(turn)


@publish.on("published")
async def on_published(turn: Turn) -> None:
    if await _to_staff_menu(turn):
        return
    if turn.choice == "more":
        turn.goto("kind")
    elif turn.choice == "mine":
        await turn.begin("my_consults")
    else:
        turn.retry("engine.choose_option")


# -- my consultations -----------------------------------------------------------------------------------
async def _is_admin(turn: Turn) -> bool:
    staffer = await turn.staffer()
    return staffer is not None and ADMIN in staffer.roles


async def _visible(turn: Turn) -> list[tuple[Booking, Slot]]:
    """The upcoming bookings this staffer may see, soonest first: their own slots' (every
    counsellor's for an admin)."""
    since = turn.now - LISTED_SINCE
    counsellors = {turn.user_key}
    if await _is_admin(turn):
        counsellors |= {s.counsellor for s in await turn.tx.bookings.slots(since=since)}
    found: list[tuple[Booking, Slot]] = []
    for counsellor in sorted(counsellors):
        found += await turn.tx.bookings.for_counsellor(counsellor, since)
    found = [(b, s) for b, s in found if b.status == "booked"]
    return sorted(found, key=lambda pair: (pair[1].start_at, pair[0].id))


async def _one(turn: Turn, reference: str) -> tuple[Booking, Slot] | None:
    """The booking by its reference if this staffer may see it; None otherwise, the same either way."""
    booking = await turn.tx.bookings.by_reference(reference)
    slot = await turn.tx.bookings.slot(booking.slot_id) if booking else None
    if booking is None or slot is None:
        return None
    if slot.counsellor != turn.user_key and not await _is_admin(turn):
        return None
    return booking, slot


@mine.start
async def start_mine(turn: Turn, payload: str) -> None:
    turn.goto("list")


@mine.ask("list")
async def ask_list(turn: Turn) -> None:
    pairs = await _visible(turn)
    admin = await _is_admin(turn)
    turn.say("counsellor.mine_intro", count=len(pairs), admin=admin)
    items = []
    today = today_of(turn)
    for booking, slot in pairs:
        label = T(
            "counsellor.mine_item",
            day=day_words(turn.app, slot.start_at.astimezone(_zone(turn)).date(), today, turn.lang),
            time=local_time(turn.app, slot.start_at),
            kind=_kind_label(turn, slot.kind),
            name=await _member_name(turn, booking),
        )
        items.append(Item(booking.reference, label))
    consults_pager.show(turn, items)
    _back_button(turn)


async def _member_name(turn: Turn, booking: Booking) -> str | None:
    member = await turn.tx.members.by_id(booking.member_id)
    return member.name if member else None


@mine.on("list")
async def on_list(turn: Turn) -> None:
    if await _to_staff_menu(turn):
        return
    typed = _digits(turn.text).upper() if turn.choice is None else ""
    reference = typed if typed else consults_pager.picked(turn)
    if reference is None:
        return
    if await _one(turn, reference) is None:
        turn.retry("counsellor.not_found", reference=reference[:12])
        return
    turn.data["ref"] = reference
    turn.goto("one")


async def _current(turn: Turn) -> tuple[Booking, Slot] | None:
    reference = turn.data.get("ref")
    return await _one(turn, reference) if isinstance(reference, str) else None


async def _details(turn: Turn, booking: Booking, slot: Slot) -> dict[str, Any]:
    keyring = turn.app.keyring
    member = await turn.tx.members.by_id(booking.member_id)
    counsellor = await turn.tx.staff.get(slot.counsellor) if slot.counsellor != turn.user_key else None
    return {
        "reference": booking.reference,
        **_slot_line(turn, slot.start_at, slot.end_at),
        "kind": _kind_label(turn, slot.kind),
        "mode": booking.mode,
        "station": _station_name(turn, booking.station or slot.station),
        "name": member.name if member else None,
        "phone": keyring.decrypt(member.phone_enc) if member else None,
        "topic": keyring.decrypt(booking.topic_enc) if booking.topic_enc else None,
        "group": slot.capacity > 1,
        "booked": slot.booked,
        "capacity": slot.capacity,
        "counsellor": counsellor.name if counsellor else None,
        "status": booking.status,
    }


@mine.ask("one")
async def ask_one(turn: Turn) -> None:
    pair = await _current(turn)
    if pair is None:
        turn.say("counsellor.gone")
        turn.button(T("counsellor.to_list"), "list")
        return
    booking, slot = pair
    turn.say("counsellor.detail", **await _details(turn, booking, slot))
    if booking.status == "booked":
        turn.button(T("counsellor.action_cancel"), "cancel")
        turn.button(T("counsellor.action_no_show"), "no_show")
    turn.button(T("counsellor.to_list"), "list")


@mine.on("one")
async def on_one(turn: Turn) -> None:
    choice = turn.choice
    pair = await _current(turn)
    if choice == "list" or pair is None:
        turn.goto("list")
        return
    booking, slot = pair
    if choice not in ("cancel", "no_show"):
        turn.retry("engine.choose_option")
    elif booking.status != "booked":
        turn.retry()  # settled since it was shown: show it as it is now
    elif choice == "cancel":
        turn.goto("reason")
    elif turn.now < slot.start_at:
        turn.retry("counsellor.no_show_too_early", time=local_time(turn.app, slot.start_at))
    else:
        turn.data["pending"] = {"action": "no_show"}
        turn.goto("confirm")


@mine.ask("reason")
async def ask_reason(turn: Turn) -> None:
    turn.say("counsellor.ask_reason")
    for code in REASONS:
        turn.button(T(f"counsellor.reason_{code}"), _REASON + code)
    turn.button(T("counsellor.back_to_booking"), "back")


@mine.on("reason")
async def on_reason(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        turn.goto("one")
        return
    if choice.startswith(_REASON) and choice[len(_REASON) :] in REASONS:
        turn.data["pending"] = {"action": "cancel", "reason_code": choice[len(_REASON) :]}
        turn.goto("confirm")
        return
    reason = " ".join(turn.text.split()) if not choice else ""
    if len(reason) < 2:
        turn.retry("counsellor.reason_needed")
    elif len(reason) > REASON_MAX:
        turn.retry("counsellor.reason_too_long", limit=REASON_MAX)
    else:
        turn.data["pending"] = {"action": "cancel", "reason": reason}
        turn.goto("confirm")


def _reason(turn: Turn, pending: dict[str, Any], lang: str) -> str | None:
    """The reason as typed, or a ready-made one in `lang` (the member's, when it is sent to them)."""
    code = pending.get("reason_code")
    if code in REASONS:
        return turn.app.locale.text(lang, f"counsellor.reason_{code}")
    typed = pending.get("reason")
    return typed.rstrip("。.!！") if isinstance(typed, str) else None


@mine.ask("confirm")
async def ask_confirm(turn: Turn) -> None:
    pending = turn.data.get("pending")
    pair = await _current(turn)
    if not isinstance(pending, dict) or pair is None:
        turn.say("counsellor.gone")
        turn.button(T("counsellor.to_list"), "list")
        return
    booking, slot = pair
    details = await _details(turn, booking, slot)
    turn.say(f"counsellor.confirm_{pending['action']}", reason=_reason(turn, pending, turn.lang), **details)
    turn.button(T("counsellor.yes_apply"), "yes")
    turn.button(T("counsellor.back_to_booking"), "back")


@mine.on("confirm")
async def on_confirm(turn: Turn) -> None:
    pending = turn.data.get("pending")
    pair = await _current(turn)
    if turn.choice == "list" or pair is None:
        turn.goto("list")
    elif turn.choice == "back" or not isinstance(pending, dict):
        turn.data.pop("pending", None)
        turn.goto("one")
    elif turn.choice == "yes":
        await _apply(turn, pending, pair[0])
    else:
        turn.retry("engine.choose_option")


async def _apply(turn: Turn, pending: dict[str, Any], booking: Booking) -> None:
    action = pending.get("action")
    turn.data.pop("pending", None)
    try:
        if action == "cancel":
            cancelled = await cancel(turn.tx, turn.app, booking.reference, by=turn.user_key, now=turn.now)
            await _tell_reason(turn, pending, cancelled)
            await turn.tx.audit.record(turn.now, turn.user_key, "booking.cancelled_by_counsellor", booking.reference)
        else:
            await mark_no_show(turn.tx, turn.app, booking.reference, by=turn.user_key, now=turn.now)
    except BookingRefused as refused:
        turn.say("counsellor.not_applied", action=action, reason=refused.reason)
        turn.goto("one")
        return
    turn.say("counsellor.applied", action=action, reference=booking.reference)
    turn.goto("list")


async def _tell_reason(turn: Turn, pending: dict[str, Any], booking: Booking) -> None:
    """The counsellor's reason, after the service's notice of the cancellation (which offers the next
    free times), to each of the member's identities in the language that identity chose."""
    slot = await turn.tx.bookings.slot(booking.slot_id)
    kind = slot.kind if slot else ""
    for identity in await turn.tx.members.identities(booking.member_id):
        session = await turn.tx.sessions.get(identity.user_key)
        languages = turn.app.locale.languages
        lang = session.lang if session and session.lang in languages else turn.app.profile.default_language
        text = turn.app.locale.text(
            lang,
            "counsellor.reason_to_member",
            reference=booking.reference,
            kind=_kind_label_in(turn, kind, lang),
            reason=_reason(turn, pending, lang),
        )
        await enqueue(turn.tx, identity.user_key, Outgoing(text=text, lang=lang), turn.now)
