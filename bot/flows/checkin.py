"""活动签到: staff at an event pick it, then type (or scan and send) each member's card verification code
one after another: checked in, or plainly why not (not a valid card, not signed up, on the waiting
list, already checked in). Any staff role may do it, the broadcasters who run events included.

The check-in itself is one conditional UPDATE (`checked_in_at IS NULL`), so two staff at two doors
scanning the same card check the member in once.
"""

from __future__ import annotations

from datetime import timedelta

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.services.events import Event, EventRefused, check_in, event_context, local

# An event stays open for check-in this long after it starts (people come late; a long day of it).
LATE = timedelta(hours=12)

flow = Flow(
    "checkin",
    commands=("checkin",),
    words=("活动签到", "签到", "check in", "check-in"),
    access=Access.staff(tool="events.checkin_tool"),
)
pager = Pager("checkin")


async def _events(turn: Turn) -> list[Event]:
    return [e for e in await turn.tx.events.all(since=turn.now - LATE) if not e.cancelled]


async def _counts(turn: Turn, event: Event) -> dict[str, object]:
    counts = await turn.tx.events.counts(event.id)
    return {**event_context(turn.app, event, turn.lang, turn.now), **counts.__dict__}


@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.goto("pick")


@flow.ask("pick")
async def ask_pick(turn: Turn) -> None:
    events = await _events(turn)
    if not events:
        turn.say("events.checkin_none")
    else:
        turn.say("events.checkin_pick")
        pager.show(turn, [Item(str(e.id), T("events.checkin_event_button", **await _counts(turn, e))) for e in events])
    turn.button(T("events.checkin_done"), "done")


@flow.on("pick")
async def on_pick(turn: Turn) -> None:
    if turn.choice == "done":
        turn.finish()
        return
    picked = pager.picked(turn)
    if picked is None:
        return
    event = await turn.tx.events.get(int(picked)) if picked.isdigit() else None
    if event is None or event.cancelled:
        turn.retry("events.checkin_cancelled")
        return
    turn.data["event"] = event.id
    turn.goto("code")


async def _event(turn: Turn) -> Event | None:
    event_id = turn.data.get("event")
    return await turn.tx.events.get(event_id) if isinstance(event_id, int) else None


@flow.ask("code")
async def ask_code(turn: Turn) -> None:
    event = await _event(turn)
    if event is None or event.cancelled:
        turn.say("events.checkin_cancelled")
        turn.goto("pick")
        await ask_pick(turn)
        return
    turn.say("events.checkin_ask_code", **await _counts(turn, event))
    turn.button(T("events.checkin_other_event"), "other")
    turn.button(T("events.checkin_done"), "done")


@flow.on("code")
async def on_code(turn: Turn) -> None:
    if turn.choice == "other":
        turn.data.pop(pager.key, None)
        turn.goto("pick")
        return
    event = await _event(turn)
    if turn.choice == "done":
        counts = await turn.tx.events.counts(event.id) if event else None
        turn.say("events.checkin_finished", checked_in=counts.checked_in if counts else 0)
        turn.finish()
        return
    if event is None:
        turn.goto("pick")
        return
    if not turn.text:
        turn.retry("events.checkin_code_hint")
        return
    try:
        done = await check_in(turn.app, turn.tx, event.id, turn.text, turn.now, by=turn.user_key)
    except EventRefused as e:
        _refused(turn, e)
        return
    turn.say("events.checkin_ok", number=done.member_number, name=done.masked_name)
    turn.goto("code")  # asked again, with the count that now includes this member


def _refused(turn: Turn, e: EventRefused) -> None:
    number = e.member_number or ""
    if e.key == "already_checked_in" and e.signup is not None and e.signup.checked_in_at is not None:
        turn.retry(
            "events.checkin_already", number=number, at=local(turn.app, e.signup.checked_in_at).strftime("%H:%M")
        )
    elif e.key in ("not_signed_up", "waiting"):
        turn.retry(f"events.checkin_{e.key}", number=number)
    elif e.key in ("cancelled", "not_found"):
        turn.say("events.checkin_cancelled")
        turn.goto("pick")
    else:
        turn.retry("events.checkin_bad_card")
