"""The anonymous complaints desk in the staff menu (complaints officers and admin): the queue by status,
one complaint with its thread and pictures, and what staff do with it: correct the category (triage),
route it to a team (分流), reply to the worker, close it with an outcome.

Every action is shown in full and applied only once the staffer confirms, through
`bot.services.complaints` with the version of the complaint the staffer last saw: someone else acting
on it meanwhile (another staffer, the CLI, the worker adding a message) makes the service refuse, and
the staffer is told plainly that nothing was done and shown the complaint as it is now. Nothing about
who wrote a complaint is shown, because nothing about them is kept.
"""

from __future__ import annotations

import re
from typing import Any

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.services import complaints as service
from bot.services.complaints import CATEGORIES, MAX_MESSAGE, STATUSES, Complaint, ComplaintRefused
from bot.services.media import JPEG, PNG, path_of

flow = Flow(
    "complaints_desk",
    commands=("complaints",),
    access=Access.staff("complaints", tool="complaints.desk_tool"),
)
queue_pager = Pager("complaints")
REPLY_MIN = 2
_ID = re.compile(r"[a-z2-9]{12}")
_CATEGORY, _TEAM, _OUTCOME, _VIEW = "cat:", "team:", "out:", "view:"
# Where each action is filled in, to go back to from the confirmation.
_FILLED_IN = {"triage": "category", "route": "team", "reply": "reply", "close": "outcome"}
# What staff may do from each state (the service has the last word).
_ACTIONS = {
    "new": ("triage", "route", "reply", "close"),
    "triaged": ("triage", "route", "reply", "close"),
    "routed": ("route", "reply", "close"),
    "answered": ("reply", "close"),
    "closed": (),
}


# -- the queue ---------------------------------------------------------------------------------------------
@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.data["view"] = "new"
    turn.goto("queue")


def _view(turn: Turn) -> str:
    view = turn.data.get("view")
    return view if view in STATUSES else "new"


@flow.ask("queue")
async def ask_queue(turn: Turn) -> None:
    view = _view(turn)
    counts = await turn.tx.complaints.counts()
    shown = await turn.tx.complaints.queue((view,), 0, counts.get(view, 0)) if counts.get(view) else []
    turn.say(
        "complaints.desk_queue",
        open=sum(counts.get(s, 0) for s in STATUSES[:-1]),
        shown=len(shown),
        status=view,
        **{s: counts.get(s, 0) for s in STATUSES},
    )
    queue_pager.show(turn, [Item(c.id, _queue_label(turn, c)) for c in shown])
    for status in STATUSES:
        if status != view:
            turn.button(T("complaints.desk_view", status=status, count=counts.get(status, 0)), _VIEW + status)
    turn.button(T("complaints.desk_to_staff_menu"), "back")


def _queue_label(turn: Turn, c: Complaint) -> T:
    return T(
        "complaints.desk_queue_item",
        id=c.id,
        category=c.category,
        target=_target(turn, c),
        day=c.submitted_on.isoformat(),
    )


def _target(turn: Turn, c: Complaint) -> str:
    if c.target_kind == "company" and c.target:
        return c.target
    return turn.app.locale.render(turn.lang, T("complaints.target", kind=c.target_kind, target=c.target or ""))


@flow.on("queue")
async def on_queue(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        await turn.begin("staff")
    elif choice.startswith(_VIEW) and choice[len(_VIEW) :] in STATUSES:
        turn.data["view"] = choice[len(_VIEW) :]
        turn.data[queue_pager.key] = 0
        turn.retry()
    elif turn.choice is None and _ID.fullmatch(typed := turn.text.strip().lower()):
        await _open(turn, typed)  # an id read out from the CLI or a colleague
    elif (picked := queue_pager.picked(turn)) is not None:
        await _open(turn, picked)


async def _open(turn: Turn, complaint_id: str) -> None:
    complaint = await turn.tx.complaints.get(complaint_id)
    if complaint is None:
        turn.retry("complaints.desk_not_found", id=complaint_id)
        return
    _seen(turn, complaint)
    turn.data["picture"] = 0
    turn.goto("complaint")


def _seen(turn: Turn, complaint: Complaint) -> None:
    """The complaint as the staffer now sees it: their actions apply to this version or not at all."""
    turn.data["id"], turn.data["version"] = complaint.id, complaint.version
    turn.data.pop("pending", None)


async def _current(turn: Turn) -> Complaint | None:
    complaint_id = turn.data.get("id")
    return await turn.tx.complaints.get(complaint_id) if isinstance(complaint_id, str) else None


# -- one complaint ---------------------------------------------------------------------------------------
@flow.ask("complaint")
async def ask_complaint(turn: Turn) -> None:
    complaint = await _current(turn)
    if complaint is None:
        turn.say("complaints.desk_gone")
        turn.button(T("complaints.desk_to_queue"), "queue")
        return
    if complaint.version != turn.data.get("version"):
        turn.say("complaints.desk_changed_meanwhile", status=complaint.status)
        _seen(turn, complaint)
    pictures = await _pictures(turn, complaint)
    turn.say(
        "complaints.desk_detail",
        id=complaint.id,
        status=complaint.status,
        target=_target(turn, complaint),
        category=complaint.category,
        day=complaint.submitted_on.isoformat(),
        team=_team_label(turn, complaint.team) if complaint.team else None,
        outcome=_outcome_label(turn, complaint.outcome) if complaint.outcome else None,
        closed=complaint.closed_on.isoformat() if complaint.closed_on else None,
        description=service.description(turn.app, complaint),
        pictures=len(pictures),
    )
    messages = await service.thread(turn.app, turn.tx, complaint.id)
    turn.say(
        "complaints.desk_thread",
        messages=[
            {"author": m.author, "day": m.on_day.isoformat(), "text": m.text, "pictures": len(m.media_ids)}
            for m in messages
        ],
    )
    turn.say("complaints.desk_history", events=await _history(turn, complaint))
    if pictures:
        turn.button(T("complaints.desk_see_pictures", count=len(pictures)), "pictures")
    for action in _ACTIONS.get(complaint.status, ()):
        turn.button(T(f"complaints.desk_action_{action}"), action)
    turn.button(T("complaints.desk_to_queue"), "queue")


async def _history(turn: Turn, complaint: Complaint) -> list[dict[str, Any]]:
    return [
        {"day": h.on_day.isoformat(), "from": h.from_status, "to": h.to_status, "note": _note_label(turn, h)}
        for h in await service.history(turn.app, turn.tx, complaint.id)
    ]


def _note_label(turn: Turn, h: service.HistoryEntry) -> str | None:
    """What a history row's note names (a category, team or outcome id), in words."""
    if not h.note:
        return None
    if h.note == "worker_message":
        return turn.app.locale.render(turn.lang, T("complaints.desk_note_worker_message"))
    if h.to_status in ("new", "triaged") and h.note in CATEGORIES:
        return turn.app.locale.render(turn.lang, T(f"complaints.category_{h.note}"))
    if h.to_status == "routed":
        return _team_label(turn, h.note)
    if h.to_status == "closed":
        return _outcome_label(turn, h.note)
    return h.note


def _team_label(turn: Turn, team_id: str) -> str:
    team = service.complaint_settings(turn.app).team(team_id)
    return str(team.label(turn.lang)) if team else team_id  # a team since removed from the config: its id


def _outcome_label(turn: Turn, outcome: str) -> str:
    return turn.app.locale.render(turn.lang, T("complaints.outcome", id=outcome))


async def _pictures(turn: Turn, complaint: Complaint) -> list[str]:
    """The complaint's pictures, then those sent later in the thread."""
    ids = list(await service.pictures(turn.app, turn.tx, complaint.id))
    for m in await service.thread(turn.app, turn.tx, complaint.id):
        ids += m.media_ids
    return ids


@flow.on("complaint")
async def on_complaint(turn: Turn) -> None:
    choice = turn.choice
    if choice == "queue":
        turn.goto("queue")
        return
    complaint = await _current(turn)
    if complaint is None or complaint.version != turn.data.get("version"):
        turn.retry()  # changed or gone since it was shown: show it as it is now
    elif choice == "pictures":
        turn.data["picture"] = 0
        turn.goto("pictures")
    elif choice not in _ACTIONS.get(complaint.status, ()):
        turn.retry("engine.choose_option")
    else:
        turn.goto(_FILLED_IN[choice])


# -- pictures, one a message ---------------------------------------------------------------------------------
@flow.ask("pictures")
async def ask_pictures(turn: Turn) -> None:
    complaint = await _current(turn)
    pictures = await _pictures(turn, complaint) if complaint else []
    if complaint is None or not pictures:
        turn.say("complaints.desk_no_pictures")
        turn.button(T("complaints.desk_back"), "back")
        return
    index = turn.data.get("picture", 0)
    index = index % len(pictures) if isinstance(index, int) else 0
    turn.data["picture"] = index
    record = await turn.tx.media.get(pictures[index])
    shown = {"index": index + 1, "count": len(pictures), "id": complaint.id}
    picture = None
    if record is not None and record.mime in (JPEG, PNG):
        # A read from the local media store, as the claims desk does: the reply carries the picture.
        try:
            picture = path_of(turn.app.settings.media_path(), record.sha256).read_bytes()
        except OSError:
            picture = None
    if picture is None:
        turn.say("complaints.desk_picture_lost", **shown)
    else:
        turn.image(picture)
        turn.say("complaints.desk_picture", **shown)
    if len(pictures) > 1:
        turn.button(T("complaints.desk_next_picture"), "next")
    turn.button(T("complaints.desk_back"), "back")


@flow.on("pictures")
async def on_pictures(turn: Turn) -> None:
    if turn.choice == "next":
        index = turn.data.get("picture", 0)
        turn.data["picture"] = (index if isinstance(index, int) else 0) + 1
        turn.retry()
    elif turn.choice == "back":
        turn.goto("complaint")
    else:
        turn.retry("engine.choose_option")


# -- the actions' forms ---------------------------------------------------------------------------------------
@flow.ask("category")
async def ask_category(turn: Turn) -> None:
    complaint = await _current(turn)
    turn.say("complaints.desk_ask_category", id=turn.data.get("id"), current=complaint.category if complaint else "")
    for category in CATEGORIES:
        turn.button(T(f"complaints.category_{category}"), _CATEGORY + category)
    turn.button(T("complaints.desk_back"), "back")


@flow.on("category")
async def on_category(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        turn.goto("complaint")
    elif choice.startswith(_CATEGORY) and choice[len(_CATEGORY) :] in CATEGORIES:
        turn.data["pending"] = {"action": "triage", "category": choice[len(_CATEGORY) :]}
        turn.goto("confirm")
    else:
        turn.retry("engine.choose_option")


@flow.ask("team")
async def ask_team(turn: Turn) -> None:
    turn.say("complaints.desk_ask_team", id=turn.data.get("id"))
    for team in service.complaint_settings(turn.app).teams:
        turn.button(str(team.label(turn.lang)), _TEAM + team.id)
    turn.button(T("complaints.desk_back"), "back")


@flow.on("team")
async def on_team(turn: Turn) -> None:
    choice = turn.choice or ""
    teams = {t.id for t in service.complaint_settings(turn.app).teams}
    if choice == "back":
        turn.goto("complaint")
    elif choice.startswith(_TEAM) and choice[len(_TEAM) :] in teams:
        turn.data["pending"] = {"action": "route", "team": choice[len(_TEAM) :]}
        turn.goto("confirm")
    else:
        turn.retry("engine.choose_option")


@flow.ask("reply")
async def ask_reply(turn: Turn) -> None:
    turn.say("complaints.desk_ask_reply", id=turn.data.get("id"), limit=MAX_MESSAGE)
    turn.button(T("complaints.desk_back"), "back")


@flow.on("reply")
async def on_reply(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("complaint")
        return
    text = turn.text.strip() if turn.choice is None else ""
    if len(text) < REPLY_MIN:
        turn.retry("complaints.desk_reply_short")
    elif len(text) > MAX_MESSAGE:
        turn.retry("complaints.desk_reply_long", length=len(text), limit=MAX_MESSAGE)
    else:
        turn.data["pending"] = {"action": "reply", "text": text}
        turn.goto("confirm")


@flow.ask("outcome")
async def ask_outcome(turn: Turn) -> None:
    turn.say("complaints.desk_ask_outcome", id=turn.data.get("id"))
    for outcome in service.complaint_settings(turn.app).outcomes:
        turn.button(T("complaints.outcome", id=outcome), _OUTCOME + outcome)
    turn.button(T("complaints.desk_back"), "back")


@flow.on("outcome")
async def on_outcome(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == "back":
        turn.goto("complaint")
    elif choice.startswith(_OUTCOME) and choice[len(_OUTCOME) :] in service.complaint_settings(turn.app).outcomes:
        turn.data["pending"] = {"action": "close", "outcome": choice[len(_OUTCOME) :]}
        turn.goto("confirm")
    else:
        turn.retry("engine.choose_option")


# -- confirming and applying ----------------------------------------------------------------------------------
@flow.ask("confirm")
async def ask_confirm(turn: Turn) -> None:
    pending = turn.data.get("pending")
    if not isinstance(pending, dict) or pending.get("action") not in _FILLED_IN:
        turn.say("complaints.desk_nothing_pending")
        turn.button(T("complaints.desk_back"), "back")
        return
    turn.say(
        f"complaints.desk_confirm_{pending['action']}",
        id=turn.data.get("id"),
        category=pending.get("category"),
        team=_team_label(turn, pending["team"]) if "team" in pending else None,
        text=pending.get("text"),
        outcome=_outcome_label(turn, pending["outcome"]) if "outcome" in pending else None,
        days=service.complaint_settings(turn.app).retention_days,
    )
    turn.button(T("complaints.desk_yes_apply"), "yes")
    turn.button(T("complaints.desk_change"), "change")
    turn.button(T("complaints.desk_back"), "back")


@flow.on("confirm")
async def on_confirm(turn: Turn) -> None:
    pending = turn.data.get("pending")
    if turn.choice == "back" or not isinstance(pending, dict) or pending.get("action") not in _FILLED_IN:
        turn.data.pop("pending", None)
        turn.goto("complaint")
    elif turn.choice == "change":
        turn.goto(_FILLED_IN[pending["action"]])
    elif turn.choice == "yes":
        await _apply(turn, pending)
    else:
        turn.retry("engine.choose_option")


async def _apply(turn: Turn, pending: dict[str, Any]) -> None:
    complaint_id, action = str(turn.data.get("id", "")), pending["action"]
    expected = turn.data.get("version")
    today = service.local_today(turn.app, turn.now)
    act = {"triage": service.triage, "route": service.route, "reply": service.reply, "close": service.close}[action]
    what = {"triage": "category", "route": "team", "reply": "text", "close": "outcome"}[action]
    try:
        moved = await act(turn.app, turn.tx, complaint_id, pending[what], today, expected_version=expected)
    except ComplaintRefused as refused:
        # Moved by someone else since the staffer saw it (or gone): nothing done, and said so; the
        # complaint step then shows it as it is now.
        turn.say("complaints.desk_not_applied", id=complaint_id, reason=refused.reason)
        turn.data.pop("pending", None)
        turn.goto("complaint")
        return
    await turn.tx.audit.record(turn.now, turn.user_key, f"complaint.{action}", moved.id)
    _seen(turn, moved)
    turn.say("complaints.desk_applied", id=moved.id, status=moved.status)
    turn.goto("complaint")
