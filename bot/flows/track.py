"""查询进度: the receipt code -> the complaint's status and its thread -> add information or answer.

The only way back to an anonymous complaint is its receipt code, so the flow is anonymous too: nothing
in it knows who is asking. Wrong codes are counted in memory (`ReceiptGuard`) under the turn's
`anonymous_tag` and overall; once either limit is reached every code is refused for a while, the right
one included, so that trying many codes gets nowhere. A code that is not 16 digits is no guess and
is not counted.

While the thread is open the session holds the complaint's id, encrypted; leaving (or a timeout)
drops it, and the engine then scrubs the database. Replies come only this way: nothing is ever sent to
the worker (there is no one to send it to).
"""

from __future__ import annotations

from datetime import date

from bot.engine.flow import Flow, Turn
from bot.engine.messages import Kind, T
from bot.flows.complain import category_words, target_words
from bot.services.complaints import (
    CLOSED,
    MAX_MESSAGE,
    UNION,
    Complaint,
    ComplaintRefused,
    add_from_worker,
    by_receipt,
    complaint_settings,
    get,
    local_today,
    read_receipt,
    thread,
)

OPEN = "c_enc"  # the complaint whose thread is open, encrypted (re-encrypted by a key rotation)

flow = Flow(
    "track",
    commands=("track",),
    words=("查询进度", "查进度", "投诉进度", "查询投诉", "track", "track complaint"),
    anonymous=True,
)


def _day(d: date) -> dict[str, int]:
    return {"y": d.year, "m": d.month, "d": d.day}


async def opened(turn: Turn) -> Complaint | None:
    token = turn.data.get(OPEN)
    return await get(turn.app, turn.tx, turn.app.keyring.decrypt(token)) if token else None


@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.goto("code")


# -- the code ----------------------------------------------------------------------------------------
@flow.ask("code")
async def ask_code(turn: Turn) -> None:
    turn.say("track.ask_code")


@flow.on("code")
async def on_code(turn: Turn) -> None:
    guard, tag = turn.app.receipt_guard, turn.anonymous_tag
    if turn.incoming.kind is not Kind.TEXT or not turn.text:
        turn.retry("track.code_words")
        return
    if not guard.allowed(tag, turn.now):  # checked before the code: the right one waits too
        turn.retry("track.too_many")
        return
    code = read_receipt(turn.text)
    if code is None:
        turn.retry("track.not_a_code")
        return
    complaint = await by_receipt(turn.app, turn.tx, code)
    if complaint is None:
        guard.wrong(tag, turn.now)
        if not guard.allowed(tag, turn.now):
            turn.retry("track.too_many")
            return
        turn.retry("track.wrong_code", left=guard.remaining(tag, turn.now))
        return
    turn.data[OPEN] = turn.app.keyring.encrypt(complaint.id)
    turn.goto("thread")


# -- the thread ---------------------------------------------------------------------------------------
@flow.ask("thread")
async def ask_thread(turn: Turn) -> None:
    complaint = await opened(turn)
    if complaint is None:  # deleted meanwhile (kept for a set time after closing)
        turn.say("track.gone")
        turn.finish()
        return
    messages = await thread(turn.app, turn.tx, complaint.id)
    turn.say(
        "track.status",
        status=complaint.status,
        submitted=_day(complaint.submitted_on),
        target=target_words(turn, complaint.target_kind, complaint.target),
        category=category_words(turn, complaint.category),
        team=_team(turn, complaint.team),
        outcome=_outcome(turn, complaint.outcome),
        messages=[
            {"union": m.author == UNION, "text": m.text, "day": _day(m.on_day), "pictures": len(m.media_ids)}
            for m in messages
        ],
    )
    if complaint.status != CLOSED:
        turn.button(T("track.add"), "add")
    turn.button(T("track.done"), "done")


def _team(turn: Turn, team_id: str | None) -> str | None:
    team = complaint_settings(turn.app).team(team_id) if team_id else None
    return team.label(turn.lang) if team else None


def _outcome(turn: Turn, outcome: str | None) -> str | None:
    if outcome is None:
        return None
    key = f"track.outcome_{outcome}"
    return turn.app.locale.text(turn.lang, key) if key in turn.app.locale.keys(turn.lang) else outcome


@flow.on("thread")
async def on_thread(turn: Turn) -> None:
    if turn.choice == "add":
        turn.goto("add")
    elif turn.choice == "done":
        turn.say("track.bye")
        turn.finish()
    else:
        turn.retry("track.thread_choose")


# -- adding to it -------------------------------------------------------------------------------------
@flow.ask("add")
async def ask_add(turn: Turn) -> None:
    turn.say("track.ask_add", most=MAX_MESSAGE)
    turn.button(T("track.back"), "back")


@flow.on("add")
async def on_add(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("thread")
        return
    if turn.incoming.kind is not Kind.TEXT or not turn.text:
        turn.retry("track.add_words")
        return
    if len(turn.text) > MAX_MESSAGE:
        turn.retry("track.add_long", got=len(turn.text), most=MAX_MESSAGE)
        return
    complaint = await opened(turn)
    if complaint is None:
        turn.say("track.gone")
        turn.finish()
        return
    try:
        await add_from_worker(turn.app, turn.tx, complaint.id, turn.text, today=local_today(turn.app, turn.now))
    except ComplaintRefused as e:
        turn.say("track.closed" if e.reason == "closed" else "track.not_added")
        turn.goto("thread")
        return
    turn.say("track.added")
    turn.goto("thread")
