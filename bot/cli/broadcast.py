"""`gigunion broadcast …`: notices to members, sent at the platforms' rate limits."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Broadcast notices to members: create, send with a progress bar, pause, resume, cancel, status.",
    no_args_is_help=True,
)
