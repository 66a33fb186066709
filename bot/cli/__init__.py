"""The `gigunion` command: this module builds the app from one module per command group.

A group is a module with its own `app = typer.Typer(...)`; adding one is an import and an
`app.add_typer` line below. Modules in this package import the bot only inside their commands (see
`bot.cli.common`), so that `gigunion --help` and every command start without loading what they do
not use.
"""

from __future__ import annotations

import typer

from bot.cli import (
    broadcast,
    card,
    claims,
    complaints,
    db,
    events,
    jobs,
    key,
    members,
    report,
    slots,
    staff,
    telegram,
    wechat,
)
from bot.cli.common import configure
from bot.cli.console import console
from bot.cli.failures import EXIT_CODES_HELP, explained
from bot.cli.serve import serve
from bot.cli.where import where

app = typer.Typer(help="GigUnion bot: a union chatbot for gig workers.", epilog=EXIT_CODES_HELP, no_args_is_help=True)
app.callback()(configure)

# Commands of their own.
app.command()(console)
app.command()(serve)
app.command()(where)

# Command groups, in the order `gigunion --help` lists them.
app.add_typer(db.app, name="db")
app.add_typer(card.app, name="card")
app.add_typer(staff.app, name="staff")
app.add_typer(members.app, name="members")
app.add_typer(claims.app, name="claims")
app.add_typer(slots.app, name="slots")
app.add_typer(slots.bookings_app, name="bookings")
app.add_typer(complaints.app, name="complaints")
app.add_typer(report.app, name="report")
app.add_typer(broadcast.app, name="broadcast")
app.add_typer(events.app, name="events")
app.add_typer(telegram.app, name="telegram")
app.add_typer(wechat.app, name="wechat")
app.add_typer(jobs.app, name="jobs")
app.add_typer(key.app, name="key")


def main() -> None:
    with explained():
        app()
