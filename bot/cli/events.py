"""`gigunion events …`: Events members sign up for: create, list, show, export the sign-up list."""

from __future__ import annotations

import typer

app = typer.Typer(help="Events members sign up for: create, list, show, export the sign-up list.", no_args_is_help=True)
