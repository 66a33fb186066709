"""`gigunion report …`: Reports staff publish: the satisfaction report (职工满意度情况通报).

The report holds totals only, read from the anonymous reviews; a group of fewer than 5 shows "<5"
and a second one is withheld where the first could be worked out (see `bot.services.satisfaction`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import in_transaction, settings

if TYPE_CHECKING:
    from datetime import date

    from bot.cli.common import OpenBot
    from bot.services.satisfaction import SatisfactionReport
    from storage import Tx

app = typer.Typer(help="Reports staff publish: the satisfaction report (职工满意度情况通报).", no_args_is_help=True)


class Format(StrEnum):
    html = "html"
    md = "md"
    csv = "csv"


def _writable(out: Path) -> str | None:
    """Why `out` cannot be written, checked before the report is made; None when it can."""
    import os

    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        return f"{out} is a folder; give a file name, e.g. {out / 'report.html'}"
    if not folder.is_dir():
        return f"{out}: the folder {folder} does not exist; make it first or write somewhere else"
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"{out} cannot be written here (permission denied)"
    return None


@app.command("satisfaction")
def satisfaction(
    period: Annotated[str, typer.Option("--period", help="The month, YYYY-MM, e.g. 2026-11.")],
    out: Annotated[Path, typer.Option("--out", help="The file to write, e.g. report.html.")],
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="html (with charts), md or csv; by default from --out's ending, else html."),
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="zh_CN or en; by default the union's own language.")
    ] = None,
) -> None:
    """The workers' satisfaction report of one month, compared with the month before: reviews, each
    indicator's ratings (charts in the HTML), main problems, follow-up. Exit 1 when the month has no
    reviews, 2 for a wrong option or a file that cannot be written."""
    from bot.services import satisfaction as service

    month = service.read_period(period)
    if month is None:
        raise typer.BadParameter("write the month as YYYY-MM, e.g. 2026-11", param_hint="--period")
    chosen = fmt.value if fmt else (out.suffix.lstrip(".").lower() if out.suffix.lower() in (".md", ".csv") else "html")
    language = lang or settings().profile.default_language
    if language not in ("zh_CN", "en"):
        raise typer.BadParameter("zh_CN or en", param_hint="--lang")
    problem = _writable(out)
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(2)

    async def work(bot: OpenBot, tx: Tx) -> SatisfactionReport | None:
        if not await tx.reports.count(month):
            return None
        return await service.satisfaction_report(bot, tx, month)  # type: ignore[arg-type]

    report = in_transaction(work, reading=True)
    if report is None:
        typer.echo(f"no reviews in {month}: there is no report to make", err=True)
        raise typer.Exit(1)

    from bot.locale import Locale
    from bot.services.report_render import render

    profile = settings().profile
    data = render(report, chosen, Locale(), language, str(profile.name(language)), _today(profile.timezone))
    try:
        out.write_bytes(data)
    except OSError as e:
        typer.echo(f"{out}: {e.strerror}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"satisfaction report of {month} ({report.overall.reviews or '<5'} reviews) written to {out}")


def _today(timezone: str) -> date:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    return datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
