"""活动报名: upcoming events, one opened (time in the union's time zone, place, places left), 报名 (a
place, or the waiting list with the position), 我的报名, and cancelling a sign-up (asked once more).

Entered from the menu, by /events, and by the words a notice's sign-up button says ("报名 12", "sign up
12"): those sign the member up at once, as the button promised, and say where they stand. The same
words typed while already here do the same, since a notice's button is never stale. Places and the
waiting list are held by the database (`bot.services.events`), so a member told "报上了" has the place.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.services.events import (
    CONFIRMED,
    SIGNUP_PATTERN,
    WAITING,
    Event,
    EventRefused,
    SignUp,
    cancel_signup,
    event_context,
    my_signups,
    sign_up,
    signup_id,
    upcoming,
    when_words,
)

# Typed (or said by a notice's button) to see one's own sign-ups, wherever one is in this flow.
MINE_WORDS = ("我的报名", "我的活动", "my events", "my sign-ups")

flow = Flow(
    "events",
    commands=("events",),
    words=("活动报名", "活动", "报名活动", "events", "event", *MINE_WORDS),
    patterns=(SIGNUP_PATTERN,),
    menu_label="events.menu",
    access=Access.members(refusal="events.join_first"),
)
pager = Pager("events")
mine_pager = Pager("my_events")


def _context(turn: Turn, event: Event) -> dict[str, object]:
    return event_context(turn.app, event, turn.lang, turn.now)


async def _member_id(turn: Turn) -> int:
    member = await turn.member()
    assert member is not None  # the flow admits members only, at every message
    return member.id


async def _words(turn: Turn) -> bool:
    """The words that work at every step here: a notice's "报名 12", and "我的报名". True when handled."""
    if (event_id := signup_id(turn.text)) is not None:
        await _sign_up(turn, event_id)
        return True
    if unicodedata.normalize("NFKC", turn.text).strip().casefold() in MINE_WORDS:
        turn.data.pop(mine_pager.key, None)
        turn.goto("mine")
        return True
    return False


@flow.start
async def start(turn: Turn, payload: str) -> None:
    if await _words(turn):
        return
    if payload.isdigit():  # a link to one event (/start events-12)
        turn.data["open"] = int(payload)
        turn.goto("view")
        return
    turn.goto("list")


# -- what is coming up ------------------------------------------------------------------------------
@flow.ask("list")
async def ask_list(turn: Turn) -> None:
    events = await upcoming(turn.app, turn.tx, turn.now)
    if not events:
        turn.say("events.none")
    else:
        turn.say("events.list")
        items = [Item(str(e.id), T("events.list_button", **_context(turn, e))) for e in events]
        pager.show(turn, items)
    if await my_signups(turn.app, turn.tx, await _member_id(turn), turn.now):
        turn.button(T("events.mine_button"), "mine")
    turn.button(T("events.back_to_menu"), "menu")


@flow.on("list")
async def on_list(turn: Turn) -> None:
    if await _words(turn):
        return
    if turn.choice == "menu":
        turn.finish()
    elif turn.choice == "mine":
        turn.data.pop(mine_pager.key, None)
        turn.goto("mine")
    elif (picked := pager.picked(turn)) is not None:
        turn.data["open"] = int(picked) if picked.isdigit() else 0
        turn.goto("view")


# -- one event --------------------------------------------------------------------------------------
async def _open(turn: Turn) -> tuple[Event | None, SignUp | None]:
    event_id = turn.data.get("open")
    event = await turn.tx.events.get(event_id) if isinstance(event_id, int) else None
    if event is None:
        return None, None
    held = await turn.tx.events.signup(event.id, await _member_id(turn))
    if held is None or held.status not in (CONFIRMED, WAITING):
        return event, None
    return event, replace(held, position=await turn.tx.events.position(held))


def _can_sign_up(turn: Turn, event: Event) -> bool:
    return not event.cancelled and turn.now < event.signup_deadline


@flow.ask("view")
async def ask_view(turn: Turn) -> None:
    event, held = await _open(turn)
    if event is None or event.cancelled or event.starts_at <= turn.now:
        turn.say("events.refused_cancelled" if event is not None and event.cancelled else "events.not_found")
        turn.goto("list")
        await ask_list(turn)
        return
    if not turn.data.pop("quiet", False):  # just signed up: the answer said it all
        turn.say(
            "events.detail",
            **_context(turn, event),
            status=held.status if held else "",
            position=held.position if held else None,
            closed=not _can_sign_up(turn, event),
        )
    if held is not None:
        turn.button(T("events.cancel_button"), "cancel")
    elif _can_sign_up(turn, event):
        turn.button(T("events.signup_button" if event.left else "events.waitlist_button"), "signup")
    turn.button(T("events.back_to_list"), "list")
    turn.button(T("events.mine_button"), "mine")
    turn.button(T("events.back_to_menu"), "menu")


@flow.on("view")
async def on_view(turn: Turn) -> None:
    if await _words(turn):
        return
    choice = turn.choice
    if choice == "signup":
        await _sign_up(turn, turn.data.get("open", 0))
    elif choice == "cancel":
        turn.goto("cancel")
    elif choice == "list":
        turn.goto("list")
    elif choice == "mine":
        turn.data.pop(mine_pager.key, None)
        turn.goto("mine")
    elif choice == "menu":
        turn.finish()
    else:
        turn.retry("engine.choose_option")


async def _sign_up(turn: Turn, event_id: int) -> None:
    """Sign up and say plainly where the member stands; then the event's step, with its buttons."""
    turn.data["open"] = event_id
    try:
        signup = await sign_up(turn.app, turn.tx, event_id, await _member_id(turn), turn.now)
    except EventRefused as e:
        event = await turn.tx.events.get(event_id)
        if e.key == "already" and e.signup is not None and event is not None:
            key = "events.already_confirmed" if e.signup.status == CONFIRMED else "events.already_waiting"
            turn.say(key, **_context(turn, event), position=e.signup.position)
            turn.data["quiet"] = True
        elif e.key == "not_found" or event is None:
            turn.say("events.not_found")
            turn.goto("list")
            return
        else:
            turn.say(f"events.refused_{e.key}")
        turn.goto("view")
        return
    event = await turn.tx.events.get(event_id)
    assert event is not None
    if signup.status == CONFIRMED:
        turn.say("events.signed_up", **_context(turn, event))
    else:
        turn.say("events.on_waiting_list", **_context(turn, event), position=signup.position)
    turn.data["quiet"] = True
    turn.goto("view")


# -- cancelling a sign-up ---------------------------------------------------------------------------
@flow.ask("cancel")
async def ask_cancel(turn: Turn) -> None:
    event, held = await _open(turn)
    if event is None or held is None or event.starts_at <= turn.now:
        turn.say("events.refused_not_signed_up")
        turn.goto("view")
        await ask_view(turn)
        return
    turn.say(
        "events.ask_cancel",
        title=event.title,
        when=when_words(turn.app, event.starts_at, turn.lang, turn.now),
        status=held.status,
    )
    turn.button(T("events.cancel_yes"), "yes")
    turn.button(T("events.cancel_no"), "no")


@flow.on("cancel")
async def on_cancel(turn: Turn) -> None:
    if await _words(turn):
        return
    if turn.choice == "no":
        turn.say("events.kept")
        turn.goto("view")
        return
    if turn.choice != "yes":
        turn.retry("events.choose_yes_no")
        return
    event_id = turn.data.get("open", 0)
    try:
        await cancel_signup(turn.app, turn.tx, event_id, await _member_id(turn), turn.now)
    except EventRefused as e:
        turn.say(f"events.refused_{e.key}")
        turn.goto("view")
        return
    event = await turn.tx.events.get(event_id)
    turn.say("events.cancelled", title=event.title if event else "")
    turn.finish()


# -- my sign-ups ------------------------------------------------------------------------------------
@flow.ask("mine")
async def ask_mine(turn: Turn) -> None:
    mine = await my_signups(turn.app, turn.tx, await _member_id(turn), turn.now)
    if not mine:
        turn.say("events.mine_none")
    else:
        turn.say("events.mine", count=len(mine))
        items = []
        for signup, event in mine:
            status = turn.app.locale.render(turn.lang, T(f"events.status_{signup.status}", position=signup.position))
            items.append(Item(str(event.id), T("events.mine_item", **_context(turn, event), status=status)))
        mine_pager.show(turn, items)
    turn.button(T("events.back_to_list"), "list")
    turn.button(T("events.back_to_menu"), "menu")


@flow.on("mine")
async def on_mine(turn: Turn) -> None:
    if await _words(turn):
        return
    if turn.choice == "menu":
        turn.finish()
    elif turn.choice == "list":
        turn.goto("list")
    elif (picked := mine_pager.picked(turn)) is not None:
        turn.data["open"] = int(picked) if picked.isdigit() else 0
        turn.goto("view")
