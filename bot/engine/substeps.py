"""Sub-steps: a reusable flow that one step calls and that gives a value back (aiogram-dialog's
`done(result)`), and the first of them, a date picker.

`await turn.call("pick_date", then="when", not_future=True)` leaves the calling flow for the sub-flow;
the caller's flow, step and data are kept as a frame inside the sub-flow's own data, so the call
survives a restart like any session, nests (a frame holds its caller's frame), and goes away with
everything else on /cancel, /menu or a timeout, which reset the data. `await turn.done(value)` in the
sub-flow puts the caller back and runs the caller's handler for `then` with `turn.returned` naming the
sub-flow and `turn.result` holding the value. Values should be what JSON holds (an ISO date, not a
`date`), since callers keep them in the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.engine.flow import Flow
from bot.engine.messages import T
from bot.validation import calendar_date

if TYPE_CHECKING:
    from bot.engine.flow import Turn

CALLER = "_caller"  # the frame of the flow that called this one, in the sub-flow's data


async def call(turn: Turn, flow_name: str, then: str | None, args: Mapping[str, Any]) -> None:
    flow = turn.app.flows[flow_name]
    if flow.entry is None:
        raise LookupError(f"flow {flow_name} has no entry")
    session = turn.session
    frame = {"flow": session.flow, "step": then or session.step, "data": session.data}
    session.flow, session.step, session.data = flow_name, None, {**args, CALLER: frame}
    turn.moved = True
    await flow.entry(turn, "")


async def done(turn: Turn, value: Any) -> None:
    session = turn.session
    frame = session.data.get(CALLER)
    if frame is None:  # entered on its own (a deep link), so there is no one to answer: just end
        turn.finish()
        return
    returned = session.flow
    session.flow, session.step, session.data = frame["flow"], frame["step"], frame["data"]
    turn.returned, turn.result, turn.choice = returned, value, None
    # The caller's step is asked again unless its handler moves on or retries.
    turn.moved, turn.repeat = True, False
    await turn.app.flows[session.flow].handlers[session.step](turn)


# -- the date picker ---------------------------------------------------------------------------------
# Arguments: `prompt` (a locale key), `not_future` (bool), `not_before` (an ISO date). Gives back an ISO date.
pick_date = Flow("pick_date")


def today_of(turn: Turn) -> date:
    """Today where the union is: a rider asked for "today" at 00:30 in Hangzhou means Hangzhou's day."""
    return turn.now.astimezone(ZoneInfo(turn.app.profile.timezone)).date()


def _day(d: date) -> dict[str, int]:
    return {"y": d.year, "m": d.month, "d": d.day}


def _refusal(turn: Turn, d: date, today: date) -> T | None:
    """Why `d` is outside the bounds the caller set, or None when it is within them."""
    if turn.data.get("not_future") and d > today:
        return T("forms.date_future")
    earliest = turn.data.get("not_before")
    if earliest and d < date.fromisoformat(earliest):
        return T("forms.date_too_early", **_day(date.fromisoformat(earliest)))
    return None


@pick_date.start
async def _start(turn: Turn, payload: str) -> None:
    turn.goto("date")


@pick_date.ask("date")
async def _ask_date(turn: Turn) -> None:
    today = today_of(turn)
    turn.say(turn.data.get("prompt") or "forms.date_ask")
    days = (("today", today, "forms.today"), ("yesterday", today - timedelta(1), "forms.yesterday"))
    allowed = [(payload, day, label) for payload, day, label in days if _refusal(turn, day, today) is None]
    turn.say("forms.date_hint", buttons=bool(allowed))
    for payload, day, label in allowed:
        turn.button(T(label, **_day(day)), payload)


@pick_date.on("date")
async def _on_date(turn: Turn) -> None:
    today = today_of(turn)
    picked = {"today": today, "yesterday": today - timedelta(1)}.get(turn.choice or "")
    if picked is None:
        picked = calendar_date(turn.text, today, past=bool(turn.data.get("not_future")))
    if picked is None:
        turn.retry("forms.date_invalid")
        return
    refused = _refusal(turn, picked, today)
    if refused is not None:
        turn.retry(refused.key, **refused.context)
        return
    await turn.done(picked.isoformat())
