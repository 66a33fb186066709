"""Anonymous complaints (职工点评): submitting one, following it up with the receipt code, and the
staff's triage, routing, replies and closing; the retention job.

Nothing here takes a user key, a member or a staffer: a complaint is reached by its random id (staff)
or by its receipt code (the worker), never by who wrote it. Every change of state is ONE conditional
statement on (status, version) (`storage.complaints.Complaints.transition`): a staffer who acted on
what is no longer there is refused (`ComplaintRefused("moved_meanwhile")`), never silently overruled.
Texts are encrypted under the deployment's key; days are stored, never times.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.config import Localized, Settings
from bot.services import receipts
from bot.services.jobs import register
from storage.complaints import CLOSED, NEW, Complaint, HistoryEntry, Review

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx
    from storage.jobs import Job

__all__ = [
    "CATEGORIES",
    "STATUSES",
    "TARGET_KINDS",
    "Complaint",
    "ComplaintRefused",
    "ComplaintSettings",
    "Draft",
    "HistoryEntry",
    "Indicator",
    "Review",
    "Team",
    "ThreadMessage",
]

log = logging.getLogger(__name__)

TARGET_KINDS = ("company", "union", "other")  # company: one of app.profile.platforms
CATEGORIES = ("pay", "hours", "safety", "platform_rules", "insurance", "discrimination", "union_service", "other")
TRIAGED, ROUTED, ANSWERED = "triaged", "routed", "answered"
STATUSES = (NEW, TRIAGED, ROUTED, ANSWERED, CLOSED)
OPEN_STATUSES = STATUSES[:-1]
RECEIPT_DIGITS = 16
WORKER, UNION = "worker", "union"  # authors in a thread
MEDIA_OWNER = "complaint"  # pictures sent with the complaint
MESSAGE_MEDIA_OWNER = "complaint_message"  # pictures sent later in the thread, owned by their message
MAX_MESSAGE = 1000  # characters of one message in the thread, either way

# Which states each staff action may start from.
_TRIAGE_FROM = frozenset({NEW, TRIAGED})
_ROUTE_FROM = frozenset({NEW, TRIAGED, ROUTED})
_REPLY_FROM = frozenset({NEW, TRIAGED, ROUTED, ANSWERED})
_CLOSE_FROM = frozenset(OPEN_STATUSES)


class ComplaintRefused(Exception):
    """A change that cannot be made. `key` names a sentence in locales/*/complaints.toml:
    complaints.refused_<reason>, reasons: not_found, moved_meanwhile, not_allowed, closed,
    unknown_category, unknown_team, unknown_outcome, unknown_target, too_long, empty, bad_rating."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = f"complaints.refused_{reason}"


# -- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    id: str
    label: Localized


@dataclass(frozen=True)
class Team:
    id: str
    label: Localized


@dataclass(frozen=True)
class ComplaintSettings:
    """The `[complaints]` table of the config file, with defaults for what it leaves out:

    [complaints]
    max_description = 1000
    retention_days = 365
    outcomes = ["resolved", "partly_resolved", "not_resolved", "no_reply"]
    [[complaints.indicators]]
    id = "pay"
    label = { zh_CN = "工资待遇", en = "Pay and benefits" }
    [[complaints.teams]]
    id = "legal"
    label = { zh_CN = "法律援助组", en = "Legal aid team" }
    """

    indicators: tuple[Indicator, ...]
    teams: tuple[Team, ...]
    outcomes: tuple[str, ...] = ("resolved", "partly_resolved", "not_resolved", "no_reply")
    max_description: int = 1000
    retention_days: int = 365

    def team(self, team_id: str) -> Team | None:
        return next((t for t in self.teams if t.id == team_id), None)

    def indicator(self, indicator_id: str) -> Indicator | None:
        return next((i for i in self.indicators if i.id == indicator_id), None)


DEFAULT_INDICATORS = (
    ("labour_relations", {"zh_CN": "劳动关系", "en": "Labour relations"}),
    ("pay", {"zh_CN": "工资待遇", "en": "Pay and benefits"}),
    ("safety", {"zh_CN": "劳动安全", "en": "Safety at work"}),
    ("democratic_management", {"zh_CN": "民主管理", "en": "Say in how work is run"}),
    ("union_service", {"zh_CN": "工会服务", "en": "Union service"}),
)
DEFAULT_TEAMS = (
    ("legal", {"zh_CN": "法律援助组", "en": "Legal aid team"}),
    ("company_liaison", {"zh_CN": "企业联络组", "en": "Company liaison team"}),
    ("union_office", {"zh_CN": "工会办公室", "en": "Union office"}),
)


def _positive(value: Any, default: int, name: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"[complaints] {name} must be a whole number above 0, not {value!r}")
    return value


def complaint_settings(app: BotContext) -> ComplaintSettings:
    """The union's `[complaints]` settings (defaults for whatever it leaves out)."""
    return settings_from(app.settings)


def settings_from(settings: Settings) -> ComplaintSettings:
    """`complaint_settings` from the settings alone (the CLI checks its options before opening anything)."""
    table = settings.extra.get("complaints") or {}
    fallback = settings.profile.default_language

    def loc(value: Any) -> Localized:
        return Localized(dict(value) if isinstance(value, dict) else {fallback: str(value)}, fallback)

    def items(key: str, default: tuple[tuple[str, dict[str, str]], ...]) -> list[tuple[str, Localized]]:
        given = table.get(key)
        if not given:
            return [(i, Localized(label, "zh_CN")) for i, label in default]
        return [(str(item["id"]), loc(item.get("label", item["id"]))) for item in given]

    outcomes = tuple(str(o) for o in table.get("outcomes") or ComplaintSettings.outcomes)
    return ComplaintSettings(
        indicators=tuple(Indicator(i, label) for i, label in items("indicators", DEFAULT_INDICATORS)),
        teams=tuple(Team(i, label) for i, label in items("teams", DEFAULT_TEAMS)),
        outcomes=outcomes,
        max_description=_positive(table.get("max_description"), ComplaintSettings.max_description, "max_description"),
        retention_days=_positive(table.get("retention_days"), ComplaintSettings.retention_days, "retention_days"),
    )


def local_today(app: BotContext, now: datetime | None = None) -> date:
    """Today in the union's time zone: the only time a complaint keeps."""
    return (now or app.now()).astimezone(ZoneInfo(app.profile.timezone)).date()


# -- receipt codes -------------------------------------------------------------------------------------

_DIGIT_FOLD = str.maketrans("０１２３４５６７８９", "0123456789")


def new_receipt_code() -> str:
    """16 random digits, the first not 0 (so it reads as a number, like a phone's)."""
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(RECEIPT_DIGITS - 1))


def format_receipt(code: str) -> str:
    """ "1234 5678 9012 3456"."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def read_receipt(typed: str) -> str | None:
    """The code in what was typed: spaces, dashes and full-width digits forgiven; None unless it is
    exactly 16 digits."""
    folded = typed.translate(_DIGIT_FOLD)
    kept = [ch for ch in folded if ch not in " -\u3000\u2010\u2011\u2012\u2013\u2014\uff0d\t\n"]
    code = "".join(kept)
    if len(code) != RECEIPT_DIGITS or not code.isascii() or not code.isdigit():
        return None
    return code


# -- the worker's side -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    target_kind: str
    target: str | None
    category: str
    ratings: dict[str, int]  # indicator id -> 1..5 (any subset, may be empty)
    description: str
    media_ids: tuple[str, ...] = ()  # media rows already fetched (pictures, metadata stripped)


@dataclass(frozen=True)
class ThreadMessage:
    author: str  # worker, union
    text: str
    on_day: date
    media_ids: tuple[str, ...] = ()


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _checked_draft(app: BotContext, draft: Draft) -> str:
    """The description to keep, or ComplaintRefused."""
    if draft.target_kind not in TARGET_KINDS:
        raise ComplaintRefused("unknown_target")
    if draft.target_kind == "company" and draft.target not in app.profile.platforms:
        raise ComplaintRefused("unknown_target")
    if draft.category not in CATEGORIES:
        raise ComplaintRefused("unknown_category")
    config = complaint_settings(app)
    for indicator, score in draft.ratings.items():
        if config.indicator(indicator) is None or isinstance(score, bool) or score not in (1, 2, 3, 4, 5):
            raise ComplaintRefused("bad_rating")
    text = draft.description.strip()
    if not text:
        raise ComplaintRefused("empty")
    if len(text) > config.max_description:
        raise ComplaintRefused("too_long")
    return text


async def submit(app: BotContext, tx: Tx, draft: Draft, today: date) -> tuple[Complaint, str]:
    """Keep the complaint (status new, day only, text encrypted), its review figures and its pictures;
    the complaint and its receipt code in clear, to be shown once and never stored."""
    text = _checked_draft(app, draft)
    target = draft.target if draft.target_kind == "company" else None
    code = new_receipt_code()
    review = await tx.complaints.add_review(
        period=period_of(today),
        target_kind=draft.target_kind,
        target=target,
        category=draft.category,
        scores=draft.ratings,
    )
    complaint = await tx.complaints.create(
        receipt_hash=await receipts.hash_code(app, tx, code),
        target_kind=draft.target_kind,
        target=target,
        category=draft.category,
        description_enc=app.keyring.encrypt_dated(text, today),
        review_id=review.id,
        day=today,
    )
    await _link_media(tx, draft.media_ids, MEDIA_OWNER, complaint.id, today)
    # Not logged: a line with the id, next to the turn's own lines, would say when, and so whose.
    return complaint, code


async def _link_media(tx: Tx, media_ids: Sequence[str], owner_kind: str, owner_id: str, today: date) -> None:
    day = datetime(today.year, today.month, today.day, tzinfo=UTC)
    for media_id in media_ids:
        await tx.media.link(media_id, owner_kind, owner_id, coarse_time=day)


async def by_receipt(app: BotContext, tx: Tx, code: str) -> Complaint | None:
    """The complaint this receipt code belongs to (one scrypt), or None."""
    digits = read_receipt(code)
    if digits is None:
        return None
    return await tx.complaints.by_receipt_hash(await receipts.hash_code(app, tx, digits))


def description(app: BotContext, complaint: Complaint) -> str:
    return app.keyring.decrypt(complaint.description_enc)


async def get(app: BotContext, tx: Tx, complaint_id: str) -> Complaint | None:
    return await tx.complaints.get(complaint_id.strip().lower())


async def thread(app: BotContext, tx: Tx, complaint_id: str) -> list[ThreadMessage]:
    """The complaint's description's follow-ups: the worker's additions and the union's replies, in order."""
    out = []
    for m in await tx.complaints.thread(complaint_id):
        pictures = tuple(r.id for r in await tx.media.owned_by(MESSAGE_MEDIA_OWNER, m.id))
        out.append(ThreadMessage(m.author, app.keyring.decrypt(m.body_enc), m.on_day, pictures))
    return out


async def pictures(app: BotContext, tx: Tx, complaint_id: str) -> tuple[str, ...]:
    """The ids of the pictures sent with the complaint."""
    return tuple(r.id for r in await tx.media.owned_by(MEDIA_OWNER, complaint_id))


async def history(app: BotContext, tx: Tx, complaint_id: str) -> list[HistoryEntry]:
    return await tx.complaints.history(complaint_id)


def _message_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise ComplaintRefused("empty")
    if len(text) > MAX_MESSAGE:
        raise ComplaintRefused("too_long")
    return text


async def add_from_worker(
    app: BotContext, tx: Tx, complaint_id: str, text: str, media_ids: Sequence[str] = (), *, today: date
) -> None:
    """The worker adds information or answers. An answered complaint goes back to the team (or to
    triage) so staff see there is something new; a closed one takes nothing more."""
    body = _message_text(text)
    # A staffer acting at the same moment moves the version; the worker is not refused for that.
    for _ in range(5):
        complaint = await tx.complaints.get(complaint_id)
        if complaint is None:
            raise ComplaintRefused("not_found")
        if complaint.status == CLOSED:
            raise ComplaintRefused("closed")
        to = (ROUTED if complaint.team else TRIAGED) if complaint.status == ANSWERED else complaint.status
        moved = await tx.complaints.transition(
            complaint.id,
            complaint.status,
            complaint.version,
            to,
            day=today,
            note="worker_message",
            record=to != complaint.status,
        )
        if moved is not None:
            sealed = app.keyring.encrypt_dated(body, today)
            message = await tx.complaints.add_message(moved.id, moved.version, WORKER, sealed, today)
            await _link_media(tx, media_ids, MESSAGE_MEDIA_OWNER, message.id, today)
            return
    raise ComplaintRefused("moved_meanwhile")


# -- the staff's side ------------------------------------------------------------------------------------


async def _current(tx: Tx, complaint_id: str, allowed: frozenset[str], expected_version: int | None) -> Complaint:
    complaint = await tx.complaints.get(complaint_id.strip().lower())
    if complaint is None:
        raise ComplaintRefused("not_found")
    if expected_version is not None and complaint.version != expected_version:
        raise ComplaintRefused("moved_meanwhile")
    if complaint.status not in allowed:
        raise ComplaintRefused("closed" if complaint.status == CLOSED else "not_allowed")
    return complaint


async def _move(
    tx: Tx, complaint: Complaint, to: str, today: date, note: str | None, version: int | None, **fields: Any
) -> Complaint:
    # Without a version from the caller, the one just read: anything between the read and the UPDATE
    # (another staffer, the CLI) makes it a refusal, never a silent overwrite.
    moved = await tx.complaints.transition(
        complaint.id,
        complaint.status,
        complaint.version if version is None else version,
        to,
        day=today,
        note=note,
        **fields,
    )
    if moved is None:
        raise ComplaintRefused("moved_meanwhile")
    log.info("complaint %s: %s -> %s", moved.id, complaint.status, to)
    return moved


async def triage(
    app: BotContext, tx: Tx, complaint_id: str, category: str, today: date, *, expected_version: int | None = None
) -> Complaint:
    """new|triaged -> triaged, with the category corrected (in the review's figures too)."""
    if category not in CATEGORIES:
        raise ComplaintRefused("unknown_category")
    complaint = await _current(tx, complaint_id, _TRIAGE_FROM, expected_version)
    moved = await _move(tx, complaint, TRIAGED, today, category, expected_version, category=category)
    if moved.review_id:
        await tx.complaints.set_review_category(moved.review_id, category)
    return moved


async def route(
    app: BotContext, tx: Tx, complaint_id: str, team: str, today: date, *, expected_version: int | None = None
) -> Complaint:
    """-> routed (分流) to a handling team from the config."""
    if complaint_settings(app).team(team) is None:
        raise ComplaintRefused("unknown_team")
    complaint = await _current(tx, complaint_id, _ROUTE_FROM, expected_version)
    return await _move(tx, complaint, ROUTED, today, team, expected_version, team=team)


async def reply(
    app: BotContext, tx: Tx, complaint_id: str, text: str, today: date, *, expected_version: int | None = None
) -> Complaint:
    """-> answered, the reply added to the thread (the worker reads it with the code: nothing is sent).
    The first answer records the days it took, for the reports."""
    body = _message_text(text)
    complaint = await _current(tx, complaint_id, _REPLY_FROM, expected_version)
    moved = await _move(tx, complaint, ANSWERED, today, None, expected_version)
    await tx.complaints.add_message(moved.id, moved.version, UNION, app.keyring.encrypt_dated(body, today), today)
    if moved.review_id:
        await tx.complaints.first_answer(moved.review_id, (today - moved.submitted_on).days)
    return moved


async def close(
    app: BotContext, tx: Tx, complaint_id: str, outcome: str, today: date, *, expected_version: int | None = None
) -> Complaint:
    """-> closed with an outcome; its review counts as closed. Deleted `retention_days` later."""
    if outcome not in complaint_settings(app).outcomes:
        raise ComplaintRefused("unknown_outcome")
    complaint = await _current(tx, complaint_id, _CLOSE_FROM, expected_version)
    moved = await _move(tx, complaint, CLOSED, today, outcome, expected_version, outcome=outcome, closed_on=today)
    if moved.review_id:
        await tx.complaints.review_closed(moved.review_id)
    return moved


# -- retention -------------------------------------------------------------------------------------------

RETENTION = "complaints_retention"  # the job kind, and the key of its one recurring job
RETENTION_EVERY = timedelta(days=1)
_BATCH = 200


async def purge_closed(app: BotContext, before: date) -> int:
    """Delete complaints closed before `before`, with their thread, history and pictures; their review
    figures stay. How many complaints were deleted."""
    total = 0
    while True:
        async with app.db.transaction() as tx:
            due = await tx.complaints.closed_before(before, _BATCH)
            if not due:
                break
            messages = await tx.complaints.message_ids(due)
            gone = await tx.complaints.delete_closed(due)
            for complaint_id in gone:
                await tx.media.delete_owned(MEDIA_OWNER, complaint_id)
                for message_id in messages.get(complaint_id, ()):
                    await tx.media.delete_owned(MESSAGE_MEDIA_OWNER, message_id)
        total += len(gone)
        if len(due) < _BATCH:
            break
    if total:
        await _purge_files(app)
        log.info("complaints deleted after retention: %d", total)
    return total


async def _purge_files(app: BotContext) -> None:
    """The pictures' files go once no row names them (the media store's own sweep)."""
    from bot.runtime import KEEP_UNLINKED_MEDIA
    from bot.services.media import purge_unlinked

    await purge_unlinked(app.db, app.settings.media_path(), app.now() - KEEP_UNLINKED_MEDIA)


async def retention(app: BotContext, job: Job) -> datetime:
    days = complaint_settings(app).retention_days
    await purge_closed(app, local_today(app) - timedelta(days=days))
    return app.now() + RETENTION_EVERY


# Recurring: it schedules its own next run. Should it fail for good, the next start brings it back.
register(RETENTION, retention, max_attempts=10, max_backoff=timedelta(hours=6))


async def ensure_retention(app: BotContext) -> None:
    """Have the retention job scheduled (due now the first time): every process start asks, one job results."""
    async with app.db.transaction() as tx:
        await tx.jobs.ensure(RETENTION, RETENTION, app.now(), app.now())
