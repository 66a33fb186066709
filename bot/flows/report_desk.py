"""满意度通报 in the staff menu (complaints officers and admin): pick a month (this one, the last one,
or typed as YYYY-MM) and a format, and receive the satisfaction report as a file, or as a picture with
its main figures where the chat takes no files (WeChat).

The report is not made in the turn: drawing its charts and writing it takes a second or two, and a
turn stays short and does no file work. The turn schedules a job ("satisfaction_report") whose
payload holds the month, the format, the staffer's user key and language; the job builds the report
outside any turn and queues it in the outbox for the staffer, so it is delivered, retried and never
sent twice like every later message. A staffer who lost the role meanwhile is sent nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.engine.access import Access
from bot.engine.context import BotContext
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.services import report_render
from bot.services.jobs import register, schedule
from bot.services.outbox import enqueue
from bot.services.satisfaction import (
    SatisfactionReport,
    period_of,
    previous_period,
    read_period,
    satisfaction_report,
)
from storage.jobs import Job

flow = Flow("report_desk", commands=("report",), access=Access.staff("complaints", tool="report.tool"))

JOB = "satisfaction_report"
FILE_FORMATS = report_render.FORMATS  # html, md, csv: sent as a document
PICTURE = "png"  # the overall chart as a picture, the main figures as its text
CHANNELS_WITHOUT_FILES = ("wechat",)
_PERIOD, _FORMAT = "p:", "f:"


def _formats(turn: Turn) -> tuple[str, ...]:
    if turn.incoming.channel in CHANNELS_WITHOUT_FILES:
        return (PICTURE,)
    return ("html", "csv", "md", PICTURE)


@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.goto("period")


@flow.ask("period")
async def ask_period(turn: Turn) -> None:
    this = period_of(turn.now.astimezone(ZoneInfo(turn.app.profile.timezone)).date())
    turn.say("report.ask_period")
    turn.button(T("report.this_month", period=this), _PERIOD + this)
    turn.button(T("report.last_month", period=previous_period(this)), _PERIOD + previous_period(this))
    turn.button(T("report.back"), "back")


@flow.on("period")
async def on_period(turn: Turn) -> None:
    if turn.choice == "back":
        await turn.begin("staff")
        return
    if turn.choice and turn.choice.startswith(_PERIOD):
        period = read_period(turn.choice[len(_PERIOD) :])
    else:
        period = read_period(turn.text)
    if period is None:
        turn.retry("report.bad_period")
        return
    reviews = await turn.tx.reports.count(period)
    if not reviews:
        turn.retry("report.empty_period", period=period)
        return
    turn.data["period"], turn.data["reviews"] = period, reviews
    turn.goto("format")


@flow.ask("format")
async def ask_format(turn: Turn) -> None:
    period, reviews = turn.data["period"], turn.data["reviews"]
    formats = _formats(turn)
    turn.say("report.ask_format" if len(formats) > 1 else "report.ask_format_wechat", period=period, reviews=reviews)
    for fmt in formats:
        turn.button(T(f"report.format_{fmt}"), _FORMAT + fmt)
    turn.button(T("report.back"), "back")


@flow.on("format")
async def on_format(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("period")
        return
    fmt = (turn.choice or "")[len(_FORMAT) :] if (turn.choice or "").startswith(_FORMAT) else None
    if fmt not in _formats(turn):
        turn.retry("engine.choose_option")
        return
    period = turn.data["period"]
    payload = {"period": period, "format": fmt, "to": turn.user_key, "lang": turn.lang}
    # Keyed so that a second tap on the same report replaces the first instead of sending it twice.
    key = f"{JOB}:{turn.user_key}:{period}:{fmt}"
    await schedule(turn.app, turn.tx, JOB, turn.now, payload, key=key)
    turn.say("report.scheduled", period=period)
    await turn.begin("staff")


# -- the job: make the report, queue it for the staffer -------------------------------------------------
def _message(app: BotContext, report: SatisfactionReport, fmt: str, lang: str):  # type: ignore[no-untyped-def]
    """The outbox message carrying the report (runs in a thread: charts and templates take a while)."""
    from bot.engine.messages import Outgoing

    union = str(app.profile.name(lang))
    if fmt == PICTURE:
        text = report_render.summary_text(report, app.locale, lang, union)
        return Outgoing(text=text, image=report_render.picture(report), lang=lang)
    today = app.now().astimezone(ZoneInfo(app.profile.timezone)).date()
    data = report_render.render(report, fmt, app.locale, lang, union, today)
    text = app.locale.text(lang, "report.ready", period=report.period)
    return Outgoing(text=text, lang=lang, document=(report_render.file_name(report, fmt), data))


async def send_report(app: BotContext, job: Job) -> datetime | None:
    """Job "satisfaction_report": the report of `period` in `format`, to the staffer `to`."""
    period, fmt = str(job.payload["period"]), str(job.payload["format"])
    to, lang = str(job.payload["to"]), str(job.payload["lang"])
    if lang not in app.locale.languages:
        lang = app.profile.default_language
    async with app.db.transaction() as tx:
        if not flow.access.admits_staffer(await tx.staff.get(to)):
            return None  # no longer on the complaints desk: the report is not theirs to have
        report = await satisfaction_report(app, tx, period)
    message = await asyncio.to_thread(_message, app, report, fmt, lang)
    async with app.db.transaction() as tx:
        # Finished in the transaction that queues the message: both are kept or neither, so the report
        # is queued once even if this process stops right after.
        if await tx.jobs.finish(job, app.now()):
            await enqueue(tx, to, message, app.now())
    return None


register(JOB, send_report, max_attempts=3)
