"""`gigunion complaints …`: the anonymous complaints desk."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Anonymous complaints: the queue, triage, routing, replies and closing (who wrote one is never known).",
    no_args_is_help=True,
)
