"""发布通知 (send a notice) and 我的通知 (my notices): the broadcaster's tools in the staff menu.

Composing asks one thing a message: the text, an optional picture, an optional sign-up button for an
upcoming event, and who it goes to (everyone, or members matching every condition chosen: platform,
kind of work, where they joined, joined since, language). The preview is the notice itself, rendered by
`broadcasts.notice` as members will get it (text, picture, button), with how many members it reaches and
how many of them have muted notices. Only then is it sent (created and started, delivered by the bot
processes) or scheduled for a time. Nothing is written before that: the draft lives in the session.

我的通知 lists the staffer's own notices (an admin's: everyone's) with their delivery report, and pauses,
resumes or cancels one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import date, datetime, timedelta

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import Kind, Label, Request, T
from bot.engine.paging import Item, Pager
from bot.engine.substeps import today_of
from bot.flows.counsellor import clock_time
from bot.services import broadcasts, events
from bot.services.broadcasts import BroadcastRefused, Segment
from bot.services.media import JPEG, PNG, expect_file, path_of, received
from bot.validation import calendar_date, source_code
from storage.broadcasts import DRAFT, PAUSED, SCHEDULED, SENDING, Broadcast
from storage.staff import ADMIN

compose = Flow(
    "compose_notice",
    commands=("notice",),
    words=("发布通知", "发通知", "send a notice"),
    access=Access.staff("broadcaster", tool="compose.tool"),
)
mine = Flow(
    "my_notices",
    commands=("mynotices",),
    access=Access.staff("broadcaster", tool="compose.mine_tool"),
)

EVENTS_SHOWN = 6  # upcoming events offered for a sign-up button, soonest first
SCHEDULE_AHEAD_MAX = timedelta(days=366)
LISTED = 50  # notices in 我的通知
SNIPPET = 16  # characters of a notice's text that name it there
_STAFF, _BACK = "staff", "back"
_EVENT, _BY, _PLATFORM, _WORK, _LANG = "ev:", "by:", "p:", "w:", "l:"
CONDITIONS = ("platform", "work_kind", "station", "joined_since", "lang")
_CHANGES = ("text", "picture", "event", "audience")
notices_pager = Pager("notices")


async def _to_staff_menu(turn: Turn) -> bool:
    if turn.choice == _STAFF:
        await turn.begin("staff")
        return True
    return False


def _refused(turn: Turn, e: BroadcastRefused) -> None:
    state = turn.app.locale.text(turn.lang, f"broadcast.state_{e.state}") if e.state else ""
    turn.retry(e.key, state=state)


def _changing(turn: Turn, next_step: str) -> None:
    """On to `next_step`, or straight back to the preview when one part is being changed."""
    turn.goto("preview" if turn.data.pop("changing", False) else next_step)


# -- the text -------------------------------------------------------------------------------------------
@compose.start
async def start_compose(turn: Turn, payload: str) -> None:
    turn.goto("text")


@compose.ask("text")
async def ask_text(turn: Turn) -> None:
    turn.say("compose.ask_text", most=broadcasts.MAX_TEXT, changing=bool(turn.data.get("text")))
    turn.button(T("compose.to_staff_menu"), _STAFF)


@compose.on("text")
async def on_text(turn: Turn) -> None:
    if await _to_staff_menu(turn):
        return
    if turn.incoming.kind is not Kind.TEXT:
        turn.retry("compose.text_only")
        return
    try:
        text = broadcasts.check_text(turn.incoming.text)
    except BroadcastRefused as e:
        _refused(turn, e)
        return
    turn.data["text"] = text
    _changing(turn, "picture")


# -- the picture ----------------------------------------------------------------------------------------
@compose.ask("picture")
async def ask_picture(turn: Turn) -> None:
    expect_file(turn, strip_metadata=True)  # where a photo was taken is not for thousands of members
    turn.say("compose.ask_picture", has=bool(turn.data.get("media")))
    turn.request(Request.PHOTO)
    turn.button(T("compose.no_picture"), "skip")
    if turn.data.get("media"):
        turn.button(T("compose.keep_picture"), "keep")
    turn.button(T("compose.back"), _BACK)


@compose.on("picture")
async def on_picture(turn: Turn) -> None:
    if turn.choice == _BACK:
        turn.data.pop("changing", None)
        turn.goto("text")
    elif turn.choice == "skip":
        turn.data.pop("media", None)
        _changing(turn, "event")
    elif turn.choice == "keep" and turn.data.get("media"):
        _changing(turn, "event")
    elif turn.incoming.media is None and turn.incoming.kind not in (Kind.PHOTO, Kind.DOCUMENT):
        turn.retry("compose.picture_or_skip")
    elif (stored := received(turn)) is not None:  # None: told why (too big, broken…), asked again
        if stored.mime not in (JPEG, PNG):
            turn.retry("compose.picture_only")
            return
        turn.data["media"] = stored.id
        _changing(turn, "event")


# -- the sign-up button ---------------------------------------------------------------------------------
def _event_label(turn: Turn, event: events.Event) -> str:
    when = events.when_words(turn.app, event.starts_at, turn.lang, turn.now)
    return turn.app.locale.text(turn.lang, "compose.event_button", title=event.title, when=when)


@compose.ask("event")
async def ask_event(turn: Turn) -> None:
    upcoming = (await events.upcoming(turn.app, turn.tx, turn.now))[:EVENTS_SHOWN]
    turn.say("compose.ask_event", any=bool(upcoming))
    for event in upcoming:
        turn.button(_event_label(turn, event), f"{_EVENT}{event.id}")
    turn.button(T("compose.no_event"), "none")
    turn.button(T("compose.back"), _BACK)


@compose.on("event")
async def on_event(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == _BACK:
        turn.data.pop("changing", None)
        turn.goto("picture")
    elif choice == "none":
        turn.data.pop("event", None)
        _changing(turn, "audience")
    elif choice.startswith(_EVENT) and choice[len(_EVENT) :].isdigit():
        event_id = int(choice[len(_EVENT) :])
        if not any(e.id == event_id for e in await events.upcoming(turn.app, turn.tx, turn.now)):
            turn.retry("compose.event_gone")  # called off or begun since the list was shown
            return
        turn.data["event"] = event_id
        _changing(turn, "audience")
    else:
        turn.retry("compose.choose_event")


# -- the audience ---------------------------------------------------------------------------------------
def _segment(turn: Turn) -> Segment:
    return Segment.from_json(turn.data.get("segment") or "{}")


def _set_segment(turn: Turn, segment: Segment) -> None:
    turn.data["segment"] = segment.to_json()


def _lang_name(turn: Turn, lang: str) -> Label:
    key = f"compose.lang_{lang}"
    return T(key) if key in turn.app.locale.keys(turn.lang) else lang


def conditions(turn: Turn, segment: Segment) -> list[str]:
    """The segment's conditions, one line each, in the staffer's language."""
    render = turn.app.locale.render
    lines = []
    if segment.platform:
        lines.append(render(turn.lang, T("compose.cond_platform", value=segment.platform)))
    if segment.work_kind:
        kind = turn.app.profile.work_kind(segment.work_kind)
        value = kind.label(turn.lang) if kind else segment.work_kind
        lines.append(render(turn.lang, T("compose.cond_work_kind", value=value)))
    if segment.station:
        lines.append(render(turn.lang, T("compose.cond_station", value=segment.station)))
    if segment.joined_since:
        day = segment.joined_since
        lines.append(render(turn.lang, T("compose.cond_joined_since", y=day.year, m=day.month, d=day.day)))
    if segment.lang:
        lines.append(render(turn.lang, T("compose.cond_lang", value=render(turn.lang, _lang_name(turn, segment.lang)))))
    return lines


@compose.ask("audience")
async def ask_audience(turn: Turn) -> None:
    segment = _segment(turn)
    size = await broadcasts.audience(turn.app, turn.tx, segment)
    turn.say("compose.ask_audience", conditions=conditions(turn, segment), members=size.members, muted=size.muted)
    turn.button(T("compose.to_everyone" if segment.is_everyone else "compose.to_these"), "done")
    for condition in CONDITIONS:
        turn.button(T(f"compose.by_{condition}"), _BY + condition)
    if not segment.is_everyone:
        turn.button(T("compose.clear_conditions"), "clear")
    turn.button(T("compose.back"), _BACK)


@compose.on("audience")
async def on_audience(turn: Turn) -> None:
    choice = turn.choice or ""
    if turn.returned == "pick_date" and isinstance(turn.result, str):
        _set_segment(turn, replace(_segment(turn), joined_since=date.fromisoformat(turn.result)))
        turn.retry()
    elif choice == "done":
        turn.goto("preview")
    elif choice == "clear":
        _set_segment(turn, Segment())
        turn.retry()
    elif choice == _BACK:
        turn.goto("event")
    elif choice == _BY + "joined_since":
        await turn.call("pick_date", then="audience", prompt="compose.ask_joined_since", not_future=True)
    elif choice.startswith(_BY) and choice[len(_BY) :] in CONDITIONS:
        turn.goto(choice[len(_BY) :])
    else:
        turn.retry("compose.choose_audience")


@compose.ask("platform")
async def ask_platform(turn: Turn) -> None:
    turn.say("compose.ask_platform")
    for i, platform in enumerate(turn.app.profile.platforms):
        turn.button(platform, f"{_PLATFORM}{i}")
    turn.button(T("compose.back"), _BACK)


@compose.on("platform")
async def on_platform(turn: Turn) -> None:
    platforms = turn.app.profile.platforms
    choice = turn.choice or ""
    index = choice[len(_PLATFORM) :]
    if choice == _BACK:
        turn.goto("audience")
    elif choice.startswith(_PLATFORM) and index.isdigit() and int(index) < len(platforms):
        _set_segment(turn, replace(_segment(turn), platform=platforms[int(index)]))
        turn.goto("audience")
    else:
        turn.retry("compose.choose_platform")


@compose.ask("work_kind")
async def ask_work_kind(turn: Turn) -> None:
    turn.say("compose.ask_work_kind")
    for kind in turn.app.profile.work_kinds:
        turn.button(kind.label(turn.lang), f"{_WORK}{kind.id}")
    turn.button(T("compose.back"), _BACK)


@compose.on("work_kind")
async def on_work_kind(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == _BACK:
        turn.goto("audience")
    elif choice.startswith(_WORK) and turn.app.profile.work_kind(choice[len(_WORK) :]):
        _set_segment(turn, replace(_segment(turn), work_kind=choice[len(_WORK) :]))
        turn.goto("audience")
    else:
        turn.retry("compose.choose_work_kind")


@compose.ask("station")
async def ask_station(turn: Turn) -> None:
    turn.say("compose.ask_station")
    turn.button(T("compose.back"), _BACK)


@compose.on("station")
async def on_station(turn: Turn) -> None:
    if turn.choice == _BACK:
        turn.goto("audience")
        return
    code = source_code(unicodedata.normalize("NFKC", turn.text))
    if code is None:
        turn.retry("compose.station_invalid")
        return
    _set_segment(turn, replace(_segment(turn), station=code))
    turn.goto("audience")


@compose.ask("lang")
async def ask_lang(turn: Turn) -> None:
    turn.say("compose.ask_lang")
    for lang in turn.app.profile.languages:
        turn.button(_lang_name(turn, lang), f"{_LANG}{lang}")
    turn.button(T("compose.back"), _BACK)


@compose.on("lang")
async def on_lang(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice == _BACK:
        turn.goto("audience")
    elif choice.startswith(_LANG) and choice[len(_LANG) :] in turn.app.profile.languages:
        _set_segment(turn, replace(_segment(turn), lang=choice[len(_LANG) :]))
        turn.goto("audience")
    else:
        turn.retry("compose.choose_lang")


# -- the preview ----------------------------------------------------------------------------------------
def draft(turn: Turn) -> Broadcast:
    """The notice being composed, as the broadcast it will become (not saved)."""
    return Broadcast(
        id=0,
        created_by=turn.user_key,
        text=turn.data.get("text", ""),
        media_id=turn.data.get("media"),
        event_id=turn.data.get("event"),
        segment=_segment(turn).to_json(),
        state=DRAFT,
        version=0,
        send_at=None,
        recipients=0,
        skipped_muted=0,
        created_at=turn.now,
        started_at=None,
        finished_at=None,
    )


async def picture(turn: Turn, media_id: str | None) -> bytes | None:
    # A read from the local media store, as claims review shows a document: the reply carries the picture.
    record = await turn.tx.media.get(media_id) if media_id else None
    if record is None:
        return None
    try:
        return path_of(turn.app.settings.media_path(), record.sha256).read_bytes()
    except OSError:
        return None


async def chosen_event(turn: Turn) -> events.Event | None:
    """The event whose sign-up button the notice carries, while it still takes sign-ups."""
    event_id = turn.data.get("event")
    if event_id is None:
        return None
    return next((e for e in await events.upcoming(turn.app, turn.tx, turn.now) if e.id == event_id), None)


@compose.ask("preview")
async def ask_preview(turn: Turn) -> None:
    # An event called off or a picture lost since it was chosen is taken out, so the preview stays exact.
    event = await chosen_event(turn)
    gone = turn.data.get("event") is not None and event is None
    if gone:
        turn.data.pop("event")
    image = await picture(turn, turn.data.get("media"))
    lost = turn.data.get("media") is not None and image is None
    if lost:
        turn.data.pop("media")
    notice = broadcasts.notice(turn.app, draft(turn), turn.lang, event, image=image)
    segment = _segment(turn)
    size = await broadcasts.audience(turn.app, turn.tx, segment)
    turn.say("compose.preview_intro", picture=image is not None)
    turn.say("compose.preview_notice", text=notice.text)
    turn.say(
        "compose.preview_audience",
        conditions=conditions(turn, segment),
        members=size.members,
        muted=size.muted,
        reached=size.members - size.muted,
        gone=gone,
        lost=lost,
    )
    if image is not None:
        turn.image(image)
    for button in notice.buttons:  # as members see it; here it only explains itself
        turn.button(button.label, "sample")
    if size.members - size.muted > 0:
        turn.button(T("compose.send_now"), "send")
        turn.button(T("compose.schedule"), "schedule")
    turn.button(T("compose.change"), "change")
    turn.button(T("compose.cancel"), "cancel")


@compose.on("preview")
async def on_preview(turn: Turn) -> None:
    choice = turn.choice
    if choice == "sample":
        turn.retry("compose.sample_button")
    elif choice == "send":
        await send(turn, None)
    elif choice == "schedule":
        turn.goto("when")
    elif choice == "change":
        turn.goto("change")
    elif choice == "cancel":
        turn.say("compose.dropped")
        await turn.begin("staff")
    else:
        turn.retry("engine.choose_option")


async def send(turn: Turn, at: datetime | None) -> None:
    """Create the broadcast and start it (now, delivered by the bot processes) or leave it to its time."""
    app, tx = turn.app, turn.tx
    if turn.data.get("event") is not None and await chosen_event(turn) is None:
        turn.goto("preview")  # which says the button was taken out
        return
    try:
        broadcast = await broadcasts.create(
            app,
            tx,
            text=turn.data.get("text", ""),
            segment=_segment(turn),
            created_by=turn.user_key,
            media_id=turn.data.get("media"),
            event_id=turn.data.get("event"),
            send_at=at,
        )
        if at is None:
            broadcast = await broadcasts.start(app, tx, broadcast.id, by=turn.user_key, background=True)
    except BroadcastRefused as e:
        _refused(turn, e)
        return
    if at is None:
        turn.say("compose.sending", id=broadcast.id, recipients=broadcast.recipients, muted=broadcast.skipped_muted)
    else:
        turn.say("compose.scheduled", id=broadcast.id, at=broadcasts.local_time_text(app, at))
    await turn.begin("staff")


# -- scheduling -----------------------------------------------------------------------------------------
# A day, then a time of day with or without a space between: "12月5日 9:00", "明天下午3点", "tomorrow 9am".
_DAY_AND_CLOCK = re.compile(
    r"(.+?)\s*((?:上午|早上|中午|下午|晚上)?\d{1,2}(?:(?::|：|点|时)(?:\d{2}|半)?分?)?\s*(?:am|pm)?)", re.IGNORECASE
)


def local_moment(turn: Turn, typed: str) -> datetime | None:
    """ "2026-12-05 09:00", "12月5日 9:00", "明天 下午3点" in the union's time zone -> UTC; None if not a time."""
    text = unicodedata.normalize("NFKC", typed).strip()
    try:
        return broadcasts.parse_local_time(turn.app, text)
    except BroadcastRefused:
        pass
    split = _DAY_AND_CLOCK.fullmatch(text)
    if split is None:
        return None
    day_part, clock_part = split.group(1), split.group(2)
    today = today_of(turn)
    ahead = {"今天": 0, "today": 0, "明天": 1, "tomorrow": 1, "后天": 2}
    folded = day_part.strip().casefold()
    day = today + timedelta(ahead[folded]) if folded in ahead else calendar_date(day_part, today)
    at = clock_time(clock_part)
    if day is None or at is None:
        return None
    return broadcasts.parse_local_time(turn.app, f"{day.isoformat()} {at.strftime('%H:%M')}")


@compose.ask("when")
async def ask_when(turn: Turn) -> None:
    turn.say("compose.ask_when", example=broadcasts.local_time_text(turn.app, turn.now + timedelta(days=1)))
    turn.button(T("compose.back"), _BACK)


@compose.on("when")
async def on_when(turn: Turn) -> None:
    if turn.choice == _BACK:
        turn.goto("preview")
        return
    at = local_moment(turn, turn.text)
    if at is None:
        turn.retry("compose.when_invalid")
    elif at <= turn.now:
        turn.retry("compose.when_past")
    elif at - turn.now > SCHEDULE_AHEAD_MAX:
        turn.retry("compose.when_too_far")
    else:
        await send(turn, at)


# -- changing one part ----------------------------------------------------------------------------------
@compose.ask("change")
async def ask_change(turn: Turn) -> None:
    turn.say("compose.ask_change")
    for part in _CHANGES:
        turn.button(T(f"compose.change_{part}"), part)
    turn.button(T("compose.back"), _BACK)


@compose.on("change")
async def on_change(turn: Turn) -> None:
    if turn.choice == _BACK:
        turn.goto("preview")
    elif turn.choice in _CHANGES:
        turn.data["changing"] = turn.choice != "audience"  # the audience step has its own way to the preview
        turn.goto(turn.choice)
    else:
        turn.retry("engine.choose_option")


# -- 我的通知 ------------------------------------------------------------------------------------------
async def listed(turn: Turn) -> list[Broadcast]:
    """The staffer's own notices, newest first; an admin's list has everyone's."""
    staffer = await turn.staffer()
    everyone = staffer is not None and ADMIN in staffer.roles
    return [b for b in await turn.tx.broadcasts.latest(LISTED) if everyone or b.created_by == turn.user_key]


def snippet(text: str) -> str:
    """The start of a notice's text, to tell it by in a list."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= SNIPPET else first[: SNIPPET - 1] + "…"


async def report_context(turn: Turn, b: Broadcast) -> dict[str, object]:
    r = await broadcasts.report(turn.app, turn.tx, b.id)
    return {
        **r.to_json(),
        "state": turn.app.locale.text(turn.lang, f"broadcast.state_{b.state}"),
        "snippet": snippet(b.text),
        "conditions": conditions(turn, Segment.from_json(b.segment)),
        "started": broadcasts.local_time_text(turn.app, b.started_at),
        "send_at": broadcasts.local_time_text(turn.app, b.send_at),
    }


@mine.start
async def start_mine(turn: Turn, payload: str) -> None:
    turn.goto("list")


@mine.ask("list")
async def ask_list(turn: Turn) -> None:
    notices = await listed(turn)
    turn.say("compose.mine_intro", count=len(notices))
    items = [Item(str(b.id), T("compose.mine_item", **await report_context(turn, b))) for b in notices]
    notices_pager.show(turn, items)
    turn.button(T("compose.to_staff_menu"), _STAFF)


@mine.on("list")
async def on_list(turn: Turn) -> None:
    if await _to_staff_menu(turn):
        return
    picked = notices_pager.picked(turn)
    if picked is None:
        return
    if not any(str(b.id) == picked for b in await listed(turn)):
        turn.retry("compose.mine_gone")
        return
    turn.data["id"] = int(picked)
    turn.goto("one")


async def _one(turn: Turn) -> Broadcast | None:
    """The notice picked, while this staffer may still see it."""
    return next((b for b in await listed(turn) if b.id == turn.data.get("id")), None)


@mine.ask("one")
async def ask_one(turn: Turn) -> None:
    r = await _one(turn)
    if r is None:
        turn.say("compose.mine_gone")
        turn.button(T("compose.back"), _BACK)
        return
    turn.say("compose.mine_report", **await report_context(turn, r))
    if r.state == SENDING:
        turn.button(T("compose.pause"), "pause")
    if r.state == PAUSED:
        turn.button(T("compose.resume"), "resume")
    if r.state in (SCHEDULED, SENDING, PAUSED):
        turn.button(T("compose.stop"), "stop")
    turn.button(T("compose.refresh"), "refresh")
    turn.button(T("compose.back"), _BACK)


@mine.on("one")
async def on_one(turn: Turn) -> None:
    r = await _one(turn)
    choice = turn.choice
    if choice == _BACK or r is None:
        turn.goto("list")
        return
    actions = {"pause": broadcasts.pause, "resume": broadcasts.resume, "stop": broadcasts.cancel}
    if choice == "refresh":
        turn.retry()
    elif choice in actions:
        try:
            await actions[choice](turn.app, turn.tx, r.id)
        except BroadcastRefused as e:
            _refused(turn, e)
            return
        turn.retry(f"compose.done_{choice}", id=r.id)
    else:
        turn.retry("engine.choose_option")
