"""`gigunion report …`: Reports staff publish: the satisfaction report (职工满意度情况通报)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Reports staff publish: the satisfaction report (职工满意度情况通报).", no_args_is_help=True)
