"""Broadcast notices: who they go to (a segment), what members see (`notice`), and their states.

Every function takes the caller's transaction: a flow passes `turn.tx`, the CLI opens one. Each state
change is one conditional UPDATE (`storage.broadcasts.Broadcasts.move`), so a pause racing a cancel
ends with one of them and the loser is told (`BroadcastRefused("wrong_state")`). At `start` the
audience is frozen, one row per member: muted members are counted in `skipped_muted` and not queued.
Delivery itself is `bot.services.broadcast_sender`'s, run by the CLI or by the job "broadcast_send"
that bot processes run with the deliverers of their channels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.engine.dispatcher import says
from bot.engine.messages import Outgoing
from bot.services.jobs import register, schedule
from bot.services.outbox import enqueue
from storage.broadcasts import (
    CANCELLED,
    DONE,
    DRAFT,
    FAILED,
    PAUSED,
    QUEUED,
    SCHEDULED,
    SENDING,
    SENT,
    UNREACHABLE,
    Broadcast,
)
from storage.jobs import Job

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx

MAX_TEXT = 2000  # characters (WeChat's text limit is the tighter one)
SEND_JOB = "broadcast_send"
START_JOB = "broadcast_start"
CLI_PREFIX = "cli:"
MEDIA_OWNER = "broadcast"
SEGMENT_WORDS = {"platform": "platform", "work": "work_kind", "station": "station", "since": "joined_since"}
SEGMENT_WORDS |= {"lang": "lang"}


class SegmentError(ValueError):
    """A segment that cannot be read; `key` is the locale key saying what was wrong."""

    def __init__(self, key: str, value: str = "") -> None:
        super().__init__(key)
        self.key = key
        self.value = value


class BroadcastRefused(Exception):
    """A change a broadcast cannot take; `key` is the locale key (`broadcast.refused_<reason>`)."""

    def __init__(self, reason: str, state: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = f"broadcast.refused_{reason}"
        self.state = state  # for "wrong_state": the state it is in

    def say(self, app: BotContext, lang: str) -> str:
        state = app.locale.text(lang, f"broadcast.state_{self.state}") if self.state else ""
        return app.locale.text(lang, self.key, state=state)


@dataclass(frozen=True)
class Segment:
    """Every given field must match (AND); all None = every member."""

    platform: str | None = None  # members.platform
    work_kind: str | None = None  # members.work_kind (a profile work kind id)
    station: str | None = None  # members.source (the rest station / QR code they joined through)
    joined_since: date | None = None
    lang: str | None = None  # the member's language (their session's lang, else the union default)

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        if self.joined_since is not None:
            d["joined_since"] = self.joined_since.isoformat()
        return json.dumps(d, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Segment:
        d = json.loads(text or "{}")
        since = d.get("joined_since")
        return cls(
            platform=d.get("platform"),
            work_kind=d.get("work_kind"),
            station=d.get("station"),
            joined_since=date.fromisoformat(since) if since else None,
            lang=d.get("lang"),
        )

    @property
    def is_everyone(self) -> bool:
        return self == Segment()

    def describe(self) -> str:
        """The segment as it is typed ("all", "platform=蜂鸟配送,since=2026-01-01")."""
        if self.is_everyone:
            return "all"
        names = {v: k for k, v in SEGMENT_WORDS.items()}
        parts = []
        for field_name, value in asdict(self).items():
            if value is not None:
                parts.append(f"{names[field_name]}={value.isoformat() if isinstance(value, date) else value}")
        return ",".join(parts)


def parse_segment(text: str, profile: Any) -> Segment:
    """ "all" or "platform=蜂鸟配送,work=courier,since=2026-01-01,lang=en,station=X" (，and ＝ too)."""
    cleaned = text.strip().replace("，", ",").replace("＝", "=")
    if not cleaned:
        raise SegmentError("broadcast.segment_empty")
    if cleaned.casefold() in ("all", "全部", "所有人", "everyone"):
        return Segment()
    values: dict[str, Any] = {}
    for part in cleaned.split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip().casefold(), value.strip()
        if not eq or name not in SEGMENT_WORDS:
            raise SegmentError("broadcast.segment_bad_part", part.strip())
        if not value:
            raise SegmentError("broadcast.segment_bad_part", part.strip())
        field_name = SEGMENT_WORDS[name]
        if field_name in values:
            raise SegmentError("broadcast.segment_twice", name)
        if field_name == "platform" and value not in profile.platforms:
            raise SegmentError("broadcast.segment_bad_platform", value)
        if field_name == "work_kind" and profile.work_kind(value) is None:
            raise SegmentError("broadcast.segment_bad_work", value)
        if field_name == "lang":
            typed = value.replace("-", "_").casefold()
            value = next((lang for lang in profile.languages if lang.casefold() == typed), None)
            if value is None:
                raise SegmentError("broadcast.segment_bad_lang", part.partition("=")[2].strip())
        if field_name == "joined_since":
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise SegmentError("broadcast.segment_bad_date", value) from None
        values[field_name] = value
    if not values:
        raise SegmentError("broadcast.segment_empty")
    return Segment(**values)


@dataclass(frozen=True)
class Audience:
    members: int  # members matching
    muted: int  # of them, muted


@dataclass(frozen=True)
class DeliveryReport:
    id: int
    state: str
    recipients: int
    sent: int
    failed: int
    unreachable: int
    skipped_muted: int
    queued: int  # still to deliver (queued or being sent)
    created_by: str = ""
    segment: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "started_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


# -- the audience ---------------------------------------------------------------------------------
def _tz(app: BotContext) -> ZoneInfo:
    return ZoneInfo(app.profile.timezone)


def _member_lang(app: BotContext, session_lang: str | None) -> str:
    return session_lang if session_lang in app.locale.languages else app.profile.default_language


async def _matching(app: BotContext, tx: Tx, segment: Segment) -> list[tuple[int, bool, str, str, bool]]:
    """(member id, muted, user key, language, unreachable): one per member, with the identity a notice
    goes to: a reachable one where there is one, the newest first."""
    since = datetime.combine(segment.joined_since, time.min, tzinfo=_tz(app)) if segment.joined_since else None
    candidates = await tx.broadcasts.candidates(
        platform=segment.platform, work_kind=segment.work_kind, station=segment.station, joined_since=since
    )
    chosen: dict[int, tuple[int, bool, str, str, bool]] = {}
    for c in candidates:  # ordered by member, reachable first
        if c.member_id in chosen:
            continue
        chosen[c.member_id] = (c.member_id, c.muted, c.user_key, _member_lang(app, c.session_lang), c.unreachable)
    rows = list(chosen.values())
    if segment.lang is not None:
        rows = [r for r in rows if r[3] == segment.lang]
    return rows


async def audience(app: BotContext, tx: Tx, segment: Segment) -> Audience:
    rows = await _matching(app, tx, segment)
    return Audience(members=len(rows), muted=sum(1 for r in rows if r[1]))


# -- composing ------------------------------------------------------------------------------------
def check_text(text: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise BroadcastRefused("empty_text")
    if len(cleaned) > MAX_TEXT:
        raise BroadcastRefused("too_long")
    return cleaned


async def create(
    app: BotContext,
    tx: Tx,
    *,
    text: str,
    segment: Segment,
    created_by: str,
    media_id: str | None = None,
    event_id: int | None = None,
    send_at: datetime | None = None,
) -> Broadcast:
    """A draft, or "scheduled" with `send_at` (started then by the job "broadcast_start")."""
    now = app.now()
    if send_at is not None and send_at <= now:
        raise BroadcastRefused("past_time")
    broadcast = await tx.broadcasts.create(
        created_by=created_by,
        text=check_text(text),
        segment=segment.to_json(),
        media_id=media_id,
        event_id=event_id,
        send_at=send_at,
        now=now,
    )
    if media_id is not None:
        await tx.media.link(media_id, MEDIA_OWNER, str(broadcast.id))
    if send_at is not None:
        await schedule(app, tx, START_JOB, send_at, {"id": broadcast.id}, key=start_key(broadcast.id))
    return broadcast


def start_key(broadcast_id: int) -> str:
    return f"broadcast:{broadcast_id}:start"


def send_key(broadcast_id: int) -> str:
    return f"broadcast:{broadcast_id}:send"


def _event_words(event_id: int, lang: str) -> str:
    from bot.services.events import signup_words

    return signup_words(event_id, lang)


def notice(
    app: BotContext, broadcast: Broadcast, lang: str, event: Any | None = None, *, image: bytes | None = None
) -> Outgoing:
    """EXACTLY what a member sees: the header, the text, the sign-up button, the mute hint; the picture
    (its bytes, read by the caller: this runs in turns too) attached when given."""
    locale = app.locale
    parts = [locale.text(lang, "broadcast.header", union=app.profile.name(lang)), broadcast.text]
    buttons: tuple = ()
    if broadcast.event_id is not None:
        title = getattr(event, "title", None)
        parts.append(locale.text(lang, "broadcast.signup_hint", title=title or ""))
        label = locale.text(lang, "broadcast.signup_button")
        buttons = (says(label, _event_words(broadcast.event_id, lang)),)
    parts.append(locale.text(lang, "broadcast.mute_hint"))
    return Outgoing(text="\n\n".join(parts), buttons=buttons, image=image, lang=lang)


# -- states ---------------------------------------------------------------------------------------
async def _get(tx: Tx, broadcast_id: int) -> Broadcast:
    broadcast = await tx.broadcasts.get(broadcast_id)
    if broadcast is None:
        raise BroadcastRefused("not_found")
    return broadcast


async def _moved(tx: Tx, broadcast_id: int, moved: Broadcast | None) -> Broadcast:
    if moved is None:
        current = await _get(tx, broadcast_id)  # not_found rather than wrong_state when there is none
        raise BroadcastRefused("wrong_state", current.state)
    return moved


async def start(app: BotContext, tx: Tx, broadcast_id: int, *, by: str, background: bool) -> Broadcast:
    """Freeze the audience (one row per member; muted ones counted in skipped_muted and left out) and
    move to "sending"; with `background` the job "broadcast_send" delivers it from the bot processes."""
    broadcast = await _get(tx, broadcast_id)
    rows = await _matching(app, tx, Segment.from_json(broadcast.segment))
    queued = [(m, key, lang, unreachable) for m, muted, key, lang, unreachable in rows if not muted]
    now = app.now()
    moved = await tx.broadcasts.move(
        broadcast_id,
        (DRAFT, SCHEDULED),
        SENDING,
        started_at=now,
        recipients=len(queued),
        skipped_muted=len(rows) - len(queued),
    )
    moved = await _moved(tx, broadcast_id, moved)
    await tx.broadcasts.freeze(broadcast_id, queued, now)
    await tx.jobs.cancel(start_key(broadcast_id))
    if background:
        await hand_over(app, tx, broadcast_id)
    return moved


async def hand_over(app: BotContext, tx: Tx, broadcast_id: int) -> None:
    """Have the bot processes deliver it (the job "broadcast_send", run where the channels are)."""
    await schedule(app, tx, SEND_JOB, app.now(), {"id": broadcast_id}, key=send_key(broadcast_id))


async def pause(app: BotContext, tx: Tx, broadcast_id: int) -> Broadcast:
    """Senders stop after the messages in flight; `resume` carries on."""
    return await _moved(tx, broadcast_id, await tx.broadcasts.move(broadcast_id, (SENDING,), PAUSED))


async def resume(app: BotContext, tx: Tx, broadcast_id: int, *, background: bool = True) -> Broadcast:
    """Paused -> sending. Rows a stopped or killed sender left `sending` are due again (only messages
    in flight at that moment can go twice). Without `background` the caller delivers it itself."""
    moved = await _moved(tx, broadcast_id, await tx.broadcasts.move(broadcast_id, (PAUSED,), SENDING))
    await tx.broadcasts.requeue_sending(broadcast_id, app.now())
    if background:
        await hand_over(app, tx, broadcast_id)
    return moved


async def take_over(app: BotContext, tx: Tx, broadcast_id: int) -> Broadcast:
    """A broadcast left "sending" by a sender that died (kill -9, a lost machine): its rows left
    `sending` are due again now, for the caller to deliver."""
    broadcast = await _get(tx, broadcast_id)
    if broadcast.state != SENDING:
        raise BroadcastRefused("wrong_state", broadcast.state)
    await tx.broadcasts.requeue_sending(broadcast_id, app.now())
    return broadcast


async def cancel(app: BotContext, tx: Tx, broadcast_id: int) -> Broadcast:
    """Nothing more is sent (messages in flight still arrive); what was sent stays in the report."""
    moved = await tx.broadcasts.move(
        broadcast_id, (DRAFT, SCHEDULED, SENDING, PAUSED), CANCELLED, finished_at=app.now()
    )
    moved = await _moved(tx, broadcast_id, moved)
    await tx.jobs.cancel(start_key(broadcast_id))
    return moved


async def report(app: BotContext, tx: Tx, broadcast_id: int) -> DeliveryReport:
    broadcast = await _get(tx, broadcast_id)
    return _report(broadcast, await tx.broadcasts.counts(broadcast_id))


def _report(b: Broadcast, counts: dict[str, int]) -> DeliveryReport:
    return DeliveryReport(
        id=b.id,
        state=b.state,
        recipients=b.recipients,
        sent=counts.get(SENT, 0),
        failed=counts.get(FAILED, 0),
        unreachable=counts.get(UNREACHABLE, 0),
        skipped_muted=b.skipped_muted,
        queued=counts.get(QUEUED, 0) + counts.get(SENDING, 0),
        created_by=b.created_by,
        segment=Segment.from_json(b.segment).describe(),
        created_at=b.created_at,
        started_at=b.started_at,
        finished_at=b.finished_at,
    )


async def reports(app: BotContext, tx: Tx, limit: int = 50) -> list[DeliveryReport]:
    return [_report(b, await tx.broadcasts.counts(b.id)) for b in await tx.broadcasts.latest(limit)]


async def finish_if_done(app: BotContext, tx: Tx, broadcast_id: int) -> DeliveryReport | None:
    """Sending -> done once no row is left to deliver, in one conditional UPDATE; the creator's summary
    is queued in the same transaction, so it goes once. The report when this call finished it."""
    counts = await tx.broadcasts.counts(broadcast_id)
    if counts.get(QUEUED, 0) or counts.get(SENDING, 0):
        return None
    moved = await tx.broadcasts.move(broadcast_id, (SENDING,), DONE, finished_at=app.now())
    if moved is None:
        return None
    done = _report(moved, counts)
    if not moved.created_by.startswith(CLI_PREFIX):
        session = await tx.sessions.get(moved.created_by)
        lang = _member_lang(app, session.lang if session else None)
        text = summary_text(app, done, lang)
        await enqueue(tx, moved.created_by, Outgoing(text=text, lang=lang), app.now())
    return done


def summary_text(app: BotContext, r: DeliveryReport, lang: str) -> str:
    return app.locale.text(
        lang,
        "broadcast.summary",
        id=r.id,
        recipients=r.recipients,
        sent=r.sent,
        failed=r.failed,
        unreachable=r.unreachable,
        skipped_muted=r.skipped_muted,
    )


def local_time_text(app: BotContext, moment: datetime | None) -> str:
    return moment.astimezone(_tz(app)).strftime("%Y-%m-%d %H:%M") if moment else ""


def parse_local_time(app: BotContext, text: str) -> datetime:
    """ "2026-12-05 09:00" in the union's time zone, as UTC."""
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise BroadcastRefused("bad_time") from None
    return naive.replace(tzinfo=_tz(app)).astimezone(UTC)


# -- jobs -----------------------------------------------------------------------------------------
async def _start_job(app: BotContext, job: Job) -> datetime | None:
    """Job "broadcast_start": a scheduled broadcast's time has come."""
    broadcast_id = int(job.payload["id"])
    async with app.db.transaction() as tx:
        broadcast = await tx.broadcasts.get(broadcast_id)
        if broadcast is None or broadcast.state != SCHEDULED:
            return None
        await start(app, tx, broadcast_id, by=broadcast.created_by, background=True)
    return None


async def _send_job(app: BotContext, job: Job) -> datetime | None:
    from bot.services.broadcast_sender import run_job

    return await run_job(app, job)


register(START_JOB, _start_job)
register(SEND_JOB, _send_job, max_attempts=20, base_backoff=timedelta(seconds=10), max_backoff=timedelta(minutes=5))
