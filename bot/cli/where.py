"""`gigunion where`: the folders and files the bot keeps, as these settings resolve them."""

from __future__ import annotations

import typer

from bot.cli.common import settings


def where() -> None:
    """Show the data folder, the database, the key file and the media folder (changes nothing)."""
    s = settings()
    if s.sqlite_path() is not None:
        database = str(s.sqlite_path())
    else:
        from sqlalchemy import make_url

        database = make_url(s.database_url).render_as_string(hide_password=True)
    key = "GIGUNION_SECRET_KEY (or secret_key in the config file)" if s.secret_key is not None else s.key_file()
    typer.echo(f"data folder: {s.data_folder()}")
    typer.echo(f"database:    {database}")
    typer.echo(f"key file:    {key}")
    typer.echo(f"media:       {s.media_path()}")
