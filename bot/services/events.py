"""Events: creating one, signing up (a place or the waiting list), cancelling, check-in, reminders.

Every function that writes runs in the caller's transaction and either makes all its writes or raises
`EventRefused` having made none, so a flow may catch the refusal and answer in the same turn. Places are
held by the database (`storage.events`): one conditional UPDATE takes one; a sign-up past capacity goes
on the waiting list, and a confirmed sign-up given up promotes the first waiting one in the same
transaction. The messages these cause (promotion, reminder, an event called off) go through the outbox
to each of the member's identities; they are about the member's own sign-up, so mute does not apply.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.engine.dispatcher import says
from bot.engine.messages import Outgoing
from bot.privacy import mask_name
from bot.services.booking import MONTHS_EN, _each_identity, day_words
from bot.services.crypto import normalize_card_code
from bot.services.jobs import register, schedule
from bot.services.outbox import enqueue
from storage.events import CANCELLED, CONFIRMED, WAITING, Counts, Event, ListedSignUp, SignUp
from storage.jobs import Job

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx

__all__ = [
    "CANCELLED",
    "CONFIRMED",
    "REMINDER_BEFORE",
    "REMINDER_JOB",
    "SIGNUP_PATTERN",
    "WAITING",
    "CheckIn",
    "Counts",
    "Event",
    "EventRefused",
    "ListedSignUp",
    "SignUp",
    "cancel_event",
    "cancel_signup",
    "check_in",
    "create_event",
    "reminder_key",
    "sign_up",
    "signup_id",
    "signup_words",
    "upcoming",
]

REMINDER_JOB = "event_reminder"
REMINDER_BEFORE = timedelta(hours=24)
# The words a notice's sign-up button says, in any language; matched on the NFKC-folded, casefolded
# whole message ("报名 12", "报名12", "sign up 12", "signup #12").
SIGNUP_PATTERN = re.compile(r"(?:报名|sign\s*up)\s*#?\s*(\d{1,9})")
REASONS = (
    "not_found",
    "cancelled",
    "closed",
    "started",
    "already",
    "not_signed_up",
    "waiting",
    "bad_card",
    "already_checked_in",
)


class EventRefused(Exception):
    """What cannot be done; `key` is one of REASONS (and `events.refused_<key>` says it). `signup` is the
    sign-up it is about, when there is one (the member's existing one for "already")."""

    def __init__(self, key: str, signup: SignUp | None = None, member_number: str | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.signup = signup
        self.member_number = member_number


@dataclass(frozen=True)
class CheckIn:
    event_id: int
    member_id: int
    member_number: str
    masked_name: str
    checked_in_at: datetime


def signup_words(event_id: int, lang: str) -> str:
    """What a notice's sign-up button says for the member ("报名 12" / "sign up 12"); short enough for
    Telegram's 64 bytes, and matched by SIGNUP_PATTERN whatever the member's language is now."""
    return f"报名 {event_id}" if lang.lower().startswith("zh") else f"sign up {event_id}"


def signup_id(text: str) -> int | None:
    """The event id in words matched by SIGNUP_PATTERN, else None."""
    found = SIGNUP_PATTERN.fullmatch(unicodedata.normalize("NFKC", text).strip().casefold())
    return int(found.group(1)) if found else None


def reminder_key(event_id: int) -> str:
    return f"event:{event_id}:reminder"


# -- events -----------------------------------------------------------------------------------------
async def create_event(
    app: BotContext,
    tx: Tx,
    *,
    title: str,
    description: str,
    station: str | None,
    place: str | None,
    starts_at: datetime,
    signup_deadline: datetime,
    capacity: int,
    created_by: str,
) -> Event:
    """A new event with its reminder scheduled. The caller has checked the input (the CLI and any form
    say what was wrong); what would break the event is refused here too, as ValueError."""
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    if signup_deadline > starts_at:
        raise ValueError("the sign-up deadline is after the event starts")
    if (station is None) == (place is None):
        raise ValueError("give a station or a place")
    now = app.now()
    event = await tx.events.add(
        title=title,
        description=description,
        station=station,
        place=place,
        starts_at=starts_at,
        signup_deadline=signup_deadline,
        capacity=capacity,
        created_by=created_by,
        now=now,
    )
    due = starts_at - REMINDER_BEFORE
    if due > now:  # an event this close is reminded by the sign-up itself
        await schedule(app, tx, REMINDER_JOB, due, {"event_id": event.id}, key=reminder_key(event.id))
    return event


async def upcoming(app: BotContext, tx: Tx, now: datetime) -> list[Event]:
    """Events not called off that have not started, soonest first."""
    return await tx.events.upcoming(now)


async def cancel_event(app: BotContext, tx: Tx, event_id: int, now: datetime) -> Event:
    """Call the event off: no more sign-ups, its reminder dropped, and everyone signed up (or waiting)
    told."""
    event = await tx.events.get(event_id)
    if event is None:
        raise EventRefused("not_found")
    cancelled = await tx.events.cancel(event_id)
    if cancelled is None:
        raise EventRefused("cancelled")
    await tx.jobs.cancel(reminder_key(event_id))
    for signup in await tx.events.active_of(event_id):
        await _tell(tx, app, signup.member_id, now, "events.notice_cancelled", cancelled)
    return cancelled


# -- signing up -------------------------------------------------------------------------------------
async def sign_up(app: BotContext, tx: Tx, event_id: int, member_id: int, now: datetime) -> SignUp:
    """A place for the member, or a place on the waiting list when the event is full (`position` says
    where). Refused: not_found, cancelled, started, closed (the deadline passed), already (with the
    member's sign-up, position included)."""
    event = await _open_event(tx, event_id, now)
    if now >= event.signup_deadline:
        raise EventRefused("closed")
    held = await tx.events.signup(event_id, member_id)
    if held is not None and held.status != CANCELLED:
        raise EventRefused("already", await _placed(tx, held))
    # The place first: the one statement that decides who gets it when many members tap at once.
    status = CONFIRMED if await tx.events.take_place(event_id) is not None else WAITING
    signup = await tx.events.insert_signup(event_id, member_id, status, now)
    if signup is None:  # only when the turn's own read raced (not possible in a serial turn): hold the line
        if status == CONFIRMED:
            await tx.events.free_place(event_id)
        again = await tx.events.signup(event_id, member_id)
        raise EventRefused("already", await _placed(tx, again) if again else None)
    return await _placed(tx, signup)


async def cancel_signup(app: BotContext, tx: Tx, event_id: int, member_id: int, now: datetime) -> SignUp:
    """The member gives up their place (or their place in line) before the event starts. A place given
    up goes to the first waiting member, who is told; if nobody waits it is free again."""
    event = await tx.events.get(event_id)
    if event is None:
        raise EventRefused("not_found")
    if now >= event.starts_at:
        raise EventRefused("started")
    held = await tx.events.signup(event_id, member_id)
    if held is None or held.status == CANCELLED:
        raise EventRefused("not_signed_up")
    cancelled = await tx.events.set_status(held.id, held.status, CANCELLED, now)
    if cancelled is None:
        raise EventRefused("not_signed_up")
    if held.status == CONFIRMED and not event.cancelled:
        await _hand_on_place(tx, app, event, now)
    return cancelled


async def _hand_on_place(tx: Tx, app: BotContext, event: Event, now: datetime) -> None:
    promoted = await tx.events.promote_first(event.id, now)
    if promoted is None:
        await tx.events.free_place(event.id)
        return
    await _tell(tx, app, promoted.member_id, now, "events.notice_promoted", event)


async def _open_event(tx: Tx, event_id: int, now: datetime) -> Event:
    event = await tx.events.get(event_id)
    if event is None:
        raise EventRefused("not_found")
    if event.cancelled:
        raise EventRefused("cancelled")
    if now >= event.starts_at:
        raise EventRefused("started")
    return event


async def _placed(tx: Tx, signup: SignUp) -> SignUp:
    return replace(signup, position=await tx.events.position(signup))


async def my_signups(app: BotContext, tx: Tx, member_id: int, now: datetime) -> list[tuple[SignUp, Event]]:
    """The member's sign-ups (confirmed or waiting, with positions) of events not yet started."""
    return [(await _placed(tx, s), e) for s, e in await tx.events.for_member(member_id, now)]


# -- at the event -----------------------------------------------------------------------------------
async def check_in(app: BotContext, tx: Tx, event_id: int, card_code: str, now: datetime, *, by: str = "") -> CheckIn:
    """Check a member in by their card's verification code (typed or scanned). Refused: not_found,
    cancelled, bad_card (no member has this code), not_signed_up, waiting (on the waiting list only),
    already_checked_in (with `signup` for when)."""
    event = await tx.events.get(event_id)
    if event is None:
        raise EventRefused("not_found")
    if event.cancelled:
        raise EventRefused("cancelled")
    code = normalize_card_code(card_code)
    member = await tx.members.by_card_code(code) if len(code) == 8 else None
    if member is None or app.keyring.card_code(member.member_number) != code:
        raise EventRefused("bad_card")
    signup = await tx.events.signup(event_id, member.id)
    if signup is None or signup.status == CANCELLED:
        raise EventRefused("not_signed_up", member_number=member.member_number)
    if signup.status == WAITING:
        raise EventRefused("waiting", signup, member.member_number)
    if signup.checked_in_at is not None:
        raise EventRefused("already_checked_in", signup, member.member_number)
    checked = await tx.events.check_in(signup.id, now)
    if checked is None or checked.checked_in_at is None:
        raise EventRefused("already_checked_in", signup, member.member_number)
    await tx.audit.record(now, by or "staff", "event.checked_in", member.member_number)
    return CheckIn(event_id, member.id, member.member_number, mask_name(member.name), checked.checked_in_at)


# -- saying it --------------------------------------------------------------------------------------
def local(app: BotContext, when: datetime) -> datetime:
    return when.astimezone(ZoneInfo(app.profile.timezone))


def when_words(app: BotContext, when: datetime, lang: str, now: datetime | None = None) -> str:
    """周六 12月5日 14:00 / Sat 5 Dec 14:00 in the union's time zone; with `now`, 今天/明天 where they fit."""
    at = local(app, when)
    today = local(app, now).date() if now is not None else None
    day = day_words(app, at.date(), today, lang) if today is not None else absolute_day(app, at.date(), lang)
    return app.locale.text(lang, "events.when", day=day, time=at.strftime("%H:%M"))


def absolute_day(app: BotContext, day: date, lang: str) -> str:
    return app.locale.text(
        lang,
        "booking.date",
        weekday=app.locale.text(lang, f"booking.weekday_{day.weekday()}"),
        month=day.month,
        month_name=MONTHS_EN[day.month - 1],
        day=day.day,
    )


def place_words(app: BotContext, event: Event, lang: str) -> str:
    if event.station is not None and event.station.isdigit():
        index = int(event.station)
        if index < len(app.profile.stations):
            station = app.profile.stations[index]
            return app.locale.text(lang, "events.at_station", name=station.name(lang), address=station.address(lang))
    return event.place or ""


def event_context(app: BotContext, event: Event, lang: str, now: datetime | None = None) -> dict[str, object]:
    return {
        "id": event.id,
        "title": event.title,
        "when": when_words(app, event.starts_at, lang, now),
        "where": place_words(app, event, lang),
        "deadline": when_words(app, event.signup_deadline, lang, now),
        "description": event.description,
        "capacity": event.capacity,
        "left": event.left,
    }


async def _tell(tx: Tx, app: BotContext, member_id: int, now: datetime, key: str, event: Event) -> None:
    for user_key, lang in await _each_identity(tx, app, member_id):
        text = app.locale.text(lang, key, **event_context(app, event, lang, now))
        buttons = ()
        if key != "events.notice_cancelled":
            buttons = (says(app.locale.text(lang, "events.my_button"), _my_words(lang)),)
        await enqueue(tx, user_key, Outgoing(text=text, buttons=buttons, lang=lang), now)


def _my_words(lang: str) -> str:
    return "我的报名" if lang.lower().startswith("zh") else "my events"


async def send_reminder(app: BotContext, job: Job) -> datetime | None:
    """Job "event_reminder": a reminder to each identity of every member with a confirmed place, unless
    the event was called off or has begun. Finished in the transaction that queues the messages, so they
    are queued once even if the process stops right after."""
    event_id = int(job.payload["event_id"])
    now = app.now()
    async with app.db.transaction() as tx:
        if not await tx.jobs.finish(job, now):
            return None
        event = await tx.events.get(event_id)
        if event is None or event.cancelled or now >= event.starts_at:
            return None
        for signup in await tx.events.confirmed_of(event_id):
            await _tell(tx, app, signup.member_id, now, "events.notice_reminder", event)
    return None


register(REMINDER_JOB, send_reminder)
