"""Consultation booking: booking, cancelling and moving a place, reminders, no-shows and ratings.

Every function that writes runs in the caller's turn and either makes all its writes or raises
`BookingRefused` having made none, so a flow may catch the refusal and answer in the same turn. The
place itself is held by the database (`storage.bookings`): one conditional UPDATE takes it, one guarded
INSERT refuses a booking overlapping one the member holds. Reminders and the rating request are
scheduled jobs under keys "booking:<reference>:<minutes>" and "booking:<reference>:rating", cancelled
or moved with the booking; each is sent once through the outbox, in the language of each of the
member's identities.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.engine.dispatcher import says
from bot.engine.messages import Outgoing
from bot.services.jobs import register, schedule
from bot.services.outbox import enqueue
from storage.bookings import BOOKED, CANCELLED, NO_SHOW, Booking, Slot
from storage.jobs import Job
from storage.members import Member
from storage.staff import ADMIN

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx

REMINDER_JOB = "booking_reminder"
RATING_JOB = "booking_rating"
BY_MEMBER = "member"
NEXT_TIMES = 3  # free times offered to a member whose booking a counsellor cancelled
REASONS = ("taken", "overlap", "too_soon", "too_far", "cancelled_slot", "not_found", "not_yours", "not_allowed")
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class BookingRefused(Exception):
    """A booking change that cannot be made; `reason` is one of REASONS (and `booking.refused_<reason>`
    says it to the member)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def job_prefix(reference: str) -> str:
    return f"booking:{reference}:"


def reminder_key(reference: str, minutes: int) -> str:
    return f"{job_prefix(reference)}{minutes}"


def rating_key(reference: str) -> str:
    return f"{job_prefix(reference)}rating"


# -- booking ----------------------------------------------------------------------------------------
async def book(
    tx: Tx,
    app: BotContext,
    member: Member,
    slot_id: int,
    *,
    mode: str,
    station: str | None,
    topic: str | None,
    now: datetime,
) -> Booking:
    """Book a place in the slot for the member (topic encrypted), and schedule its reminders."""
    topic_enc = app.keyring.encrypt(topic.strip()) if topic and topic.strip() else None
    return await _book(tx, app, member.id, slot_id, mode=mode, station=station, topic_enc=topic_enc, now=now)


async def _book(
    tx: Tx,
    app: BotContext,
    member_id: int,
    slot_id: int,
    *,
    mode: str,
    station: str | None,
    topic_enc: str | None,
    now: datetime,
    replacing: str | None = None,
) -> Booking:
    slot = await tx.bookings.slot(slot_id)
    if slot is None:
        raise BookingRefused("not_found")
    station = _checked_place(app, slot, mode, station)
    if slot.cancelled:
        raise BookingRefused("cancelled_slot")
    _check_window(app, slot.start_at, now)
    # The place first: the one statement that decides who gets it when several members tap at once.
    if await tx.bookings.take_place(slot.id) is None:
        raise BookingRefused("taken")
    booking = await tx.bookings.insert_booking(
        slot=slot, member_id=member_id, mode=mode, station=station, topic_enc=topic_enc, now=now, ignoring=replacing
    )
    if booking is None:
        # Given back here rather than left to a rollback: a flow that catches the refusal commits its turn.
        await tx.bookings.free_place(slot.id)
        raise BookingRefused("overlap")
    await _schedule_jobs(tx, app, booking, now)
    return booking


def _checked_place(app: BotContext, slot: Slot, mode: str, station: str | None) -> str | None:
    """The station the booking is held at (None by phone or video), or BookingRefused("not_allowed")
    when the kind is not given that way or the slot is not at that place."""
    kind = app.profile.consult_kind(slot.kind)
    if kind is None or mode not in kind.modes:
        raise BookingRefused("not_allowed")
    at_station = slot.station is not None and slot.station.isdigit()
    if mode == "station":
        if not at_station or (station is not None and station != slot.station):
            raise BookingRefused("not_allowed")
        return slot.station
    # A counsellor sitting at a station can take a call too; a phone-only slot is no video call.
    if slot.station is not None and not at_station and slot.station != mode:
        raise BookingRefused("not_allowed")
    return None


def _check_window(app: BotContext, start: datetime, now: datetime) -> None:
    settings = app.settings
    if start < now + timedelta(minutes=settings.booking_min_notice_minutes):
        raise BookingRefused("too_soon")
    if start > now + timedelta(days=settings.booking_horizon_days):
        raise BookingRefused("too_far")


async def _schedule_jobs(tx: Tx, app: BotContext, booking: Booking, now: datetime) -> None:
    for minutes in app.settings.booking_reminders_minutes:
        due = booking.start_at - timedelta(minutes=minutes)
        if due > now:  # a reminder whose time has passed at booking would only say what was just said
            payload = {"reference": booking.reference, "minutes": minutes}
            await schedule(app, tx, REMINDER_JOB, due, payload, key=reminder_key(booking.reference, minutes))
    payload = {"reference": booking.reference}
    await schedule(app, tx, RATING_JOB, booking.end_at, payload, key=rating_key(booking.reference))


# -- changing a booking -----------------------------------------------------------------------------
async def _may_act(tx: Tx, booking: Booking, slot: Slot | None, by: str, member: Member | None) -> None:
    if by == BY_MEMBER:
        if member is not None and member.id != booking.member_id:
            raise BookingRefused("not_yours")
        return
    if slot is not None and by == slot.counsellor:
        return
    staffer = await tx.staff.get(by)
    if staffer is None or ADMIN not in staffer.roles:
        raise BookingRefused("not_yours")


async def cancel(
    tx: Tx, app: BotContext, reference: str, *, by: str, now: datetime, member: Member | None = None
) -> Booking:
    """Cancel a booking before it starts: the place is free again and its reminders are dropped. `by`:
    "member" (with `member`, checked to be its holder) or the staff user key of the slot's counsellor
    (or an admin), whose cancellation tells the member with the next free times of that kind."""
    booking = await tx.bookings.by_reference(reference)
    if booking is None:
        raise BookingRefused("not_found")
    slot = await tx.bookings.slot(booking.slot_id)
    await _may_act(tx, booking, slot, by, member)
    if booking.status != BOOKED or now >= booking.start_at:
        raise BookingRefused("not_allowed")
    cancelled = await tx.bookings.set_status(reference, BOOKED, CANCELLED, by=by)
    if cancelled is None:
        raise BookingRefused("not_allowed")
    await tx.bookings.free_place(booking.slot_id)
    await tx.jobs.cancel_prefix(job_prefix(reference))
    if by != BY_MEMBER and slot is not None:
        await _tell_cancelled(tx, app, cancelled, slot, now)
    return cancelled


async def reschedule(
    tx: Tx, app: BotContext, reference: str, new_slot_id: int, *, now: datetime, member: Member | None = None
) -> Booking:
    """Move a booking to another slot of the same kind: the new place is booked first, then the old one
    given back, in this one turn, so a full new slot leaves the old booking as it was."""
    old = await tx.bookings.by_reference(reference)
    if old is None:
        raise BookingRefused("not_found")
    await _may_act(tx, old, None, BY_MEMBER, member)
    if old.status != BOOKED or now >= old.start_at:
        raise BookingRefused("not_allowed")
    new_slot = await tx.bookings.slot(new_slot_id)
    if new_slot is None:
        raise BookingRefused("not_found")
    old_slot = await tx.bookings.slot(old.slot_id)
    if new_slot.id == old.slot_id or (old_slot is not None and new_slot.kind != old_slot.kind):
        raise BookingRefused("not_allowed")
    station = new_slot.station if old.mode == "station" else None
    booking = await _book(
        tx,
        app,
        old.member_id,
        new_slot.id,
        mode=old.mode,
        station=station,
        topic_enc=old.topic_enc,
        now=now,
        replacing=old.reference,
    )
    if await tx.bookings.set_status(reference, BOOKED, CANCELLED, by=BY_MEMBER) is None:
        raise BookingRefused("not_allowed")  # raised in the turn: the new booking goes with it
    await tx.bookings.free_place(old.slot_id)
    await tx.jobs.cancel_prefix(job_prefix(reference))
    return booking


async def mark_no_show(tx: Tx, app: BotContext, reference: str, *, by: str, now: datetime) -> Booking:
    """The counsellor (or an admin) records that the member did not come; only once the session began."""
    booking = await tx.bookings.by_reference(reference)
    if booking is None:
        raise BookingRefused("not_found")
    if by == BY_MEMBER:
        raise BookingRefused("not_yours")
    await _may_act(tx, booking, await tx.bookings.slot(booking.slot_id), by, None)
    if booking.status != BOOKED or now < booking.start_at:
        raise BookingRefused("not_allowed")
    marked = await tx.bookings.set_status(reference, BOOKED, NO_SHOW, by=by)
    if marked is None:
        raise BookingRefused("not_allowed")
    await tx.jobs.cancel_prefix(job_prefix(reference))  # no rating asked of someone who did not come
    return marked


async def rate(
    tx: Tx, app: BotContext, reference: str, stars: int, *, now: datetime, member: Member | None = None
) -> Booking:
    """The member's 1–5 for a session that has ended (again to change it); the booking is then done."""
    booking = await tx.bookings.by_reference(reference)
    if booking is None:
        raise BookingRefused("not_found")
    await _may_act(tx, booking, None, BY_MEMBER, member)
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5 or now < booking.end_at:
        raise BookingRefused("not_allowed")
    rated = await tx.bookings.set_rating(reference, stars)
    if rated is None:
        raise BookingRefused("not_allowed")
    await tx.jobs.cancel(rating_key(reference))  # asked and answered
    return rated


# -- what can be booked -----------------------------------------------------------------------------
def _zone(app: BotContext) -> ZoneInfo:
    return ZoneInfo(app.profile.timezone)


def _window(app: BotContext, now: datetime) -> tuple[datetime, datetime]:
    settings = app.settings
    return (
        now + timedelta(minutes=settings.booking_min_notice_minutes),
        now + timedelta(days=settings.booking_horizon_days),
    )


async def free_days(tx: Tx, app: BotContext, kind: str, now: datetime) -> list[date]:
    """The local days (the profile's time zone) that have a slot of `kind` still bookable, in order."""
    since, until = _window(app, now)
    zone = _zone(app)
    days = {s.start_at.astimezone(zone).date() for s in await tx.bookings.free_slots(kind, since, until)}
    return sorted(days)


async def free_times(tx: Tx, app: BotContext, kind: str, day: date, now: datetime) -> list[Slot]:
    """The bookable slots of `kind` on local `day`, soonest first."""
    since, until = _window(app, now)
    zone = _zone(app)
    day_start = datetime.combine(day, time(), zone)
    day_end = datetime.combine(day + timedelta(days=1), time(), zone)
    return await tx.bookings.free_slots(kind, max(since, day_start), min(until, day_end))


# -- how times are said -----------------------------------------------------------------------------
def local_time(app: BotContext, when: datetime) -> str:
    return when.astimezone(_zone(app)).strftime("%H:%M")


def local_day(app: BotContext, when: datetime) -> date:
    return when.astimezone(_zone(app)).date()


def day_words(app: BotContext, day: date, today: date, lang: str) -> str:
    """A day the way riders say it: 今天, 明天, 后天, else 周三 12月3日 (Today, Tomorrow, Wed 3 Dec)."""
    words = {0: "booking.today", 1: "booking.tomorrow", 2: "booking.day_after"}.get((day - today).days)
    if words is not None:
        return app.locale.text(lang, words)
    return app.locale.text(
        lang,
        "booking.date",
        weekday=app.locale.text(lang, f"booking.weekday_{day.weekday()}"),
        month=day.month,
        month_name=MONTHS_EN[day.month - 1],
        day=day.day,
    )


def slot_words(app: BotContext, slot: Slot, now: datetime, lang: str) -> str:
    """今天 14:00–14:45"""
    today = local_day(app, now)
    return app.locale.text(
        lang,
        "booking.when",
        day=day_words(app, local_day(app, slot.start_at), today, lang),
        start=local_time(app, slot.start_at),
        end=local_time(app, slot.end_at),
    )


def where_words(app: BotContext, booking: Booking, lang: str) -> str:
    if booking.mode == "station" and booking.station is not None and booking.station.isdigit():
        index = int(booking.station)
        if index < len(app.profile.stations):
            station = app.profile.stations[index]
            return app.locale.text(
                lang, "booking.where_station", station=station.name(lang), address=station.address(lang)
            )
    return app.locale.text(lang, f"booking.where_{'video' if booking.mode == 'video' else 'phone'}")


def kind_label(app: BotContext, kind_id: str, lang: str) -> str:
    kind = app.profile.consult_kind(kind_id)
    return str(kind.label(lang)) if kind else kind_id


def ics(app: BotContext, booking: Booking, slot: Slot, lang: str) -> bytes:
    """The booking as an iCalendar file (one VEVENT) a phone calendar can add."""
    from icalendar import Calendar, Event

    calendar = Calendar()
    calendar.add("prodid", "-//GigUnion bot//booking//")
    calendar.add("version", "2.0")
    event = Event()
    # Stable per booking, so adding the file twice updates the one event instead of making two.
    event.add("uid", f"{booking.reference}@{uuid.uuid5(uuid.NAMESPACE_DNS, 'gigunion').hex[:12]}.gigunion")
    event.add("dtstamp", booking.created_at)
    event.add("dtstart", booking.start_at)
    event.add("dtend", booking.end_at)
    event.add("summary", f"{kind_label(app, slot.kind, lang)} {booking.reference}")
    event.add("location", where_words(app, booking, lang))
    calendar.add_component(event)
    return calendar.to_ical()


# -- telling the member -----------------------------------------------------------------------------
async def _each_identity(tx: Tx, app: BotContext, member_id: int) -> list[tuple[str, str]]:
    """(user key, language) of each identity of the member, in the language that identity chose."""
    out = []
    for identity in await tx.members.identities(member_id):
        session = await tx.sessions.get(identity.user_key)
        lang = session.lang if session and session.lang in app.locale.languages else app.profile.default_language
        out.append((identity.user_key, lang))
    return out


async def _tell_cancelled(tx: Tx, app: BotContext, booking: Booking, slot: Slot, now: datetime) -> None:
    since, until = _window(app, now)
    # The time just cancelled is not offered back, though its place is free again.
    times = [s for s in await tx.bookings.free_slots(slot.kind, since, until) if s.id != slot.id][:NEXT_TIMES]
    for user_key, lang in await _each_identity(tx, app, booking.member_id):
        text = app.locale.text(
            lang,
            "booking.cancelled_by_counsellor",
            kind=kind_label(app, slot.kind, lang),
            day=day_words(app, local_day(app, slot.start_at), local_day(app, now), lang),
            start=local_time(app, slot.start_at),
            reference=booking.reference,
            times=[slot_words(app, s, now, lang) for s in times],
        )
        await enqueue(tx, user_key, Outgoing(text=text, lang=lang), now)


def _duration_words(app: BotContext, minutes: int, lang: str) -> str:
    if minutes % 60:
        return app.locale.text(lang, "booking.minutes_n", n=minutes)
    hours = minutes // 60
    return app.locale.text(lang, "booking.hours_1") if hours == 1 else app.locale.text(lang, "booking.hours_n", n=hours)


async def send_reminder(app: BotContext, job: Job) -> datetime | None:
    """Job "booking_reminder": the reminder to each identity of the member, unless the booking is no
    longer active, the session has begun, or a nearer reminder is due as well (after a long stop the
    nearer one alone is sent)."""
    reference, minutes = str(job.payload["reference"]), int(job.payload["minutes"])
    now = app.now()
    async with app.db.transaction() as tx:
        # Finished in the transaction that queues the messages: both are kept or neither, so a reminder
        # is queued once even if this process stops right after.
        if not await tx.jobs.finish(job, now):
            return None
        booking = await tx.bookings.by_reference(reference)
        if booking is None or booking.status != BOOKED or now >= booking.start_at:
            return None
        nearer = [m for m in app.settings.booking_reminders_minutes if m < minutes]
        if any(now >= booking.start_at - timedelta(minutes=m) for m in nearer):
            return None
        slot = await tx.bookings.slot(booking.slot_id)
        kind = slot.kind if slot else ""
        for user_key, lang in await _each_identity(tx, app, booking.member_id):
            text = app.locale.text(
                lang,
                "booking.reminder",
                kind=kind_label(app, kind, lang),
                minutes=minutes,
                hours=_duration_words(app, minutes, lang),
                day=day_words(app, local_day(app, booking.start_at), local_day(app, now), lang),
                start=local_time(app, booking.start_at),
                end=local_time(app, booking.end_at),
                where=where_words(app, booking, lang),
                reference=booking.reference,
            )
            cancel = says(app.locale.text(lang, "booking.cancel_button"), f"取消预约 {booking.reference}")
            await enqueue(tx, user_key, Outgoing(text=text, buttons=(cancel,), lang=lang), now)
    return None


async def ask_rating(app: BotContext, job: Job) -> datetime | None:
    """Job "booking_rating": once the session has ended, the booking is done and the member is asked
    for a 1–5 (a no-show or a cancelled booking is asked nothing)."""
    reference = str(job.payload["reference"])
    now = app.now()
    async with app.db.transaction() as tx:
        if not await tx.jobs.finish(job, now):
            return None
        booking = await tx.bookings.by_reference(reference)
        if booking is None or booking.status != BOOKED:
            return None
        await tx.bookings.set_status(reference, BOOKED, "done")
        slot = await tx.bookings.slot(booking.slot_id)
        for user_key, lang in await _each_identity(tx, app, booking.member_id):
            text = app.locale.text(
                lang,
                "booking.rating_request",
                kind=kind_label(app, slot.kind if slot else "", lang),
                reference=reference,
            )
            stars = tuple(
                says(app.locale.text(lang, "booking.rate_button", stars=n), f"评价 {reference} {n}")
                for n in range(1, 6)
            )
            await enqueue(tx, user_key, Outgoing(text=text, buttons=stars, lang=lang), now)
    return None


register(REMINDER_JOB, send_reminder)
register(RATING_JOB, ask_rating)


def refusal_text(app: BotContext, refused: BookingRefused, lang: str) -> str:
    return app.locale.text(lang, f"booking.refused_{refused.reason}")
