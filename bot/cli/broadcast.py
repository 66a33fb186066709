"""`gigunion broadcast …`: notices to members, sent at the platforms' rate limits.

`create` shows the notice exactly as members will see it and how many it goes to; `send` freezes the
audience and delivers from this process with a progress bar (Ctrl-C pauses; `resume` carries on), or
with `--background` hands it to the running bot processes (the job "broadcast_send"). A sender killed
outright leaves the broadcast "sending": `resume` (or `send`) here takes it over, and only the messages
that were in flight when it died can arrive twice. Exit codes: 0 done, 1 no (unknown, or not in a state
that allows it; paused by Ctrl-C), 2 usage, 3 database.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import run, settings

if TYPE_CHECKING:
    from bot.cli.common import OpenBot
    from bot.engine.context import BotContext
    from bot.services.broadcast_sender import Progress

app = typer.Typer(
    help="Broadcast notices to members: create, send with a progress bar, pause, resume, cancel, status.",
    no_args_is_help=True,
)

SEGMENT_HELP = (
    'Who it goes to: "all", or conditions joined by commas: platform=NAME, work=KIND, station=CODE, '
    "since=YYYY-MM-DD (joined on or after), lang=zh_CN|en."
)
CLI_LANG = "en"  # the operator's messages; notices are previewed in every language of the union


def _context(bot: OpenBot) -> BotContext:
    from bot.engine.context import BotContext
    from bot.locale import Locale

    return BotContext(settings=bot.settings, db=bot.db, keyring=bot.keyring, locale=Locale(), flows={})


def _creator() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return "cli:unknown"


def _no(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _refusal(app: BotContext, e: Any) -> str:
    return e.say(app, CLI_LANG)


def _open_app():  # type: ignore[no-untyped-def]
    """An async context: the bot's database, keys and locale (no flows, no channels)."""
    from contextlib import asynccontextmanager

    from bot.cli.common import open_bot

    @asynccontextmanager
    async def opened():  # type: ignore[no-untyped-def]
        async with open_bot(settings()) as bot:
            yield _context(bot)

    return opened()


# -- create ---------------------------------------------------------------------------------------
@app.command("create")
def create(
    text_file: Annotated[Path, typer.Option("--text-file", help="The notice's text (UTF-8), 2000 characters at most.")],
    segment: Annotated[str, typer.Option("--segment", help=SEGMENT_HELP)],
    event: Annotated[int | None, typer.Option("--event", help="An event to add a sign-up button for.")] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help='Send by itself at this time, in the union\'s time zone: "2026-12-05 09:00".'),
    ] = None,
    picture: Annotated[Path | None, typer.Option("--picture", help="A picture to send with it (JPEG or PNG).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new broadcast as one JSON object.")] = False,
) -> None:
    """Make a notice (a draft, or scheduled with --at): shows it as members will see it and how many get it."""
    import json

    from bot.handlers.console import format_text
    from bot.services import broadcasts as svc

    try:
        text = text_file.read_text("utf-8")
    except FileNotFoundError:
        raise typer.BadParameter(f"there is no file {text_file}", param_hint="--text-file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"{text_file} cannot be read as UTF-8 text ({e})", param_hint="--text-file") from None
    image = None
    if picture is not None:
        try:
            image = picture.read_bytes()
        except OSError:
            raise typer.BadParameter(f"there is no picture {picture}", param_hint="--picture") from None

    async def go() -> tuple[Any, Any, list[str]] | str:
        from bot.services.media import MediaRefused, store

        async with _open_app() as app:
            try:
                seg = svc.parse_segment(segment, app.profile)
            except svc.SegmentError as e:
                raise typer.BadParameter(
                    app.locale.text(CLI_LANG, e.key, value=e.value), param_hint="--segment"
                ) from None
            try:
                send_at = svc.parse_local_time(app, at) if at else None
                svc.check_text(text)
            except svc.BroadcastRefused as e:
                raise typer.BadParameter(
                    _refusal(app, e), param_hint="--at" if at and "time" in e.reason else "--text-file"
                ) from None
            media_id = None
            if image is not None:
                try:
                    stored = await store(
                        app.db,
                        app.settings.media_path(),
                        image,
                        max_bytes=app.settings.media_max_bytes,
                        now=app.now(),
                        strip_metadata=True,
                    )
                except MediaRefused as e:
                    raise typer.BadParameter(f"{picture} cannot be sent ({e})", param_hint="--picture") from None
                media_id = stored.id
            async with app.db.transaction() as tx:
                found = await tx.events.get(event) if event is not None else None
                if event is not None and found is None:
                    return f"There is no event #{event}."
                try:
                    b = await svc.create(
                        app,
                        tx,
                        text=text,
                        segment=seg,
                        created_by=_creator(),
                        media_id=media_id,
                        event_id=event,
                        send_at=send_at,
                    )
                except svc.BroadcastRefused as e:
                    raise typer.BadParameter(_refusal(app, e), param_hint="--at") from None
                size = await svc.audience(app, tx, seg)
            previews = [format_text(svc.notice(app, b, lang, found, image=image)) for lang in app.locale.languages]
            return b, size, previews

    result = run(go())
    if isinstance(result, str):
        raise _no(result)
    b, size, previews = result
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "id": b.id,
                    "state": b.state,
                    "audience": size.members - size.muted,
                    "members": size.members,
                    "muted": size.muted,
                    "send_at": b.send_at.isoformat() if b.send_at else None,
                    "preview": previews,
                },
                ensure_ascii=False,
            )
        )
        return
    for preview in previews:
        typer.echo("─" * 40)
        typer.echo(preview)
    typer.echo("─" * 40)
    typer.echo(f"Broadcast #{b.id} ({b.state}): {size.members - size.muted} members will get it")
    typer.echo(f"({size.members} match the segment; {size.muted} have turned notices off).")
    if b.state == "draft":
        typer.echo(f"Send it with: gigunion broadcast send {b.id}")


# -- send / resume ---------------------------------------------------------------------------------
def _progress_columns():  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, TextColumn

    return (
        TextColumn("[bold]#{task.fields[id]}"),
        BarColumn(),
        TextColumn("sent {task.fields[sent]}  failed {task.fields[failed]}  unreachable {task.fields[unreachable]}"),
        TextColumn("remaining {task.fields[remaining]}"),
        TextColumn("{task.fields[rate]}/s"),
        TextColumn("left {task.fields[left]}"),
    )


def _fields(p: Progress) -> dict[str, Any]:
    import time

    elapsed = max(time.monotonic() - p.started, 1e-6)
    rate = p.sent_this_run / elapsed
    left = p.remaining / rate if rate > 0 else None
    when = "?" if left is None else f"{int(left // 60)}:{int(left % 60):02d}"
    return {
        "sent": p.sent,
        "failed": p.failed,
        "unreachable": p.unreachable,
        "remaining": p.remaining,
        "rate": f"{rate:.0f}",
        "left": when,
    }


async def _deliver(app: BotContext, broadcast_id: int) -> tuple[str, Any]:
    """Deliver from this process with a progress bar; Ctrl-C stops after the messages in flight and pauses."""
    import asyncio
    import signal
    import sys
    import time
    from contextlib import AsyncExitStack

    from rich.console import Console
    from rich.progress import Progress as Bar

    from bot.handlers.console import ConsoleDeliverer
    from bot.services import broadcast_sender as sender
    from bot.services import broadcasts as svc

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        async with AsyncExitStack() as stack:
            deliverers: dict[str, Any] = {"console": ConsoleDeliverer(sys.stderr)}
            if app.settings.telegram_token:
                deliverers["telegram"] = await stack.enter_async_context(sender.telegram_deliverer(app.settings))
            if app.settings.wechat_appid and app.settings.wechat_secret:
                deliverers["wechat"] = await stack.enter_async_context(sender.wechat_deliverer(app))
            bar = stack.enter_context(Bar(*_progress_columns(), console=Console(stderr=True)))
            task = bar.add_task("send", total=None, id=broadcast_id, **_fields(sender.Progress()))
            shown = [0.0]

            def show(p: Progress) -> None:
                now = time.monotonic()
                if now - shown[0] < 0.1 and p.remaining:
                    return
                shown[0] = now
                bar.update(task, total=p.recipients or 1, completed=p.done, **_fields(p))

            run_ = sender.BroadcastSender(app, broadcast_id, deliverers, stop=stop, on_progress=show)
            end = await run_.run()
            show(run_.progress)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if end == sender.STOPPED:
        async with app.db.transaction() as tx:
            try:
                await svc.pause(app, tx, broadcast_id)
            except svc.BroadcastRefused:  # cancelled or paused meanwhile: already stopped
                pass
    async with app.db.transaction() as tx:
        return end, await svc.report(app, tx, broadcast_id)


def _send_or_resume(broadcast_id: int, *, yes: bool, background: bool, resuming: bool) -> None:
    from bot.services import broadcast_sender as sender
    from bot.services import broadcasts as svc

    async def go() -> int:
        async with _open_app() as app:
            async with app.db.transaction() as tx:
                b = await tx.broadcasts.get(broadcast_id)
                if b is None:
                    raise _no(f"There is no broadcast #{broadcast_id}.")
                if b.state in (svc.DRAFT, svc.SCHEDULED) and resuming:
                    raise _no(f"Broadcast #{broadcast_id} is not sent yet: `gigunion broadcast send {b.id}` sends it.")
                if b.state in (svc.DONE, svc.CANCELLED):
                    raise _no(f"Broadcast #{broadcast_id} is {b.state}: there is nothing to send.")
                if b.state in (svc.DRAFT, svc.SCHEDULED):
                    size = await svc.audience(app, tx, svc.Segment.from_json(b.segment))
            if b.state in (svc.DRAFT, svc.SCHEDULED) and not yes:
                typer.echo(
                    f"Broadcast #{b.id} goes to {size.members - size.muted} members ({size.muted} muted are skipped)."
                )
                if not typer.confirm("Send it now?"):
                    raise typer.Exit(1)
            try:
                async with app.db.transaction() as tx:
                    if b.state in (svc.DRAFT, svc.SCHEDULED):
                        await svc.start(app, tx, b.id, by=_creator(), background=background)
                    elif b.state == svc.PAUSED:
                        await svc.resume(app, tx, b.id, background=background)
                    else:  # "sending": its sender died, or runs elsewhere; this process takes it over
                        await svc.take_over(app, tx, b.id)
                        if background:
                            await svc.hand_over(app, tx, b.id)
            except svc.BroadcastRefused as e:
                raise _no(_refusal(app, e)) from None
            if background:
                typer.echo(
                    f"Broadcast #{b.id} is handed to the running bot: `gigunion broadcast status {b.id}` follows it."
                )
                return 0
            end, report = await _deliver(app, b.id)
            if end == sender.FINISHED:
                typer.echo(svc.summary_text(app, report, app.profile.default_language))
                return 0
            if end == sender.STOPPED or end == sender.PAUSED:
                typer.echo(
                    f"Broadcast #{b.id} paused: {report.sent} sent, {report.queued} to go. "
                    f"Carry on with `gigunion broadcast resume {b.id}`."
                )
            elif end == sender.WAITING:
                typer.echo(
                    f"Broadcast #{b.id}: {report.queued} recipients are on channels this process cannot reach; "
                    "the running bot sends them (`--background`)."
                )
            else:
                typer.echo(f"Broadcast #{b.id} is {report.state}.")
            return 1

    code = run(go())
    if code:
        raise typer.Exit(code)


@app.command("send")
def send(
    broadcast_id: Annotated[int, typer.Argument(metavar="ID")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before sending.")] = False,
    background: Annotated[bool, typer.Option("--background", help="Hand it to the running bot processes.")] = False,
) -> None:
    """Send a notice: from this process with a progress bar (Ctrl-C pauses), or --background."""
    _send_or_resume(broadcast_id, yes=yes, background=background, resuming=False)


@app.command("resume")
def resume(
    broadcast_id: Annotated[int, typer.Argument(metavar="ID")],
    background: Annotated[bool, typer.Option("--background", help="Hand it to the running bot processes.")] = False,
) -> None:
    """Carry on with a paused notice (or one whose sender died) from this process, or --background."""
    _send_or_resume(broadcast_id, yes=True, background=background, resuming=True)


# -- pause / cancel / status / list ------------------------------------------------------------------
def _change(broadcast_id: int, what: str) -> None:
    from bot.services import broadcasts as svc

    async def go() -> str:
        async with _open_app() as app, app.db.transaction() as tx:
            try:
                b = await getattr(svc, what)(app, tx, broadcast_id)
            except svc.BroadcastRefused as e:
                raise _no(_refusal(app, e)) from None
            return b.state

    typer.echo(f"Broadcast #{broadcast_id}: {run(go())}")


@app.command("pause")
def pause(broadcast_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Pause a notice being sent (here or by the bot): the messages in flight still arrive."""
    _change(broadcast_id, "pause")


@app.command("cancel")
def cancel(broadcast_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Cancel a notice: nothing more is sent; what was sent stays in its report."""
    _change(broadcast_id, "cancel")


def _line(r: dict[str, Any]) -> str:
    return (
        f"#{r['id']}\t{r['state']}\t{r['segment']}\trecipients {r['recipients']}\tsent {r['sent']}\t"
        f"failed {r['failed']}\tunreachable {r['unreachable']}\tmuted {r['skipped_muted']}\tto go {r['queued']}"
    )


@app.command("status")
def status(
    broadcast_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The delivery report of one notice."""
    import json

    from bot.services import broadcasts as svc

    async def go() -> dict[str, Any]:
        async with _open_app() as app, app.db.transaction() as tx:
            try:
                return (await svc.report(app, tx, broadcast_id)).to_json()
            except svc.BroadcastRefused as e:
                raise _no(_refusal(app, e)) from None

    r = run(go())
    typer.echo(json.dumps(r, ensure_ascii=False) if as_json else _line(r))


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per notice, one per line.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many, newest first.")] = 50,
) -> None:
    """Notices, newest first, with their delivery counts."""
    import json

    from bot.services import broadcasts as svc

    async def go() -> list[dict[str, Any]]:
        async with _open_app() as app, app.db.transaction() as tx:
            return [r.to_json() for r in await svc.reports(app, tx, limit)]

    for r in run(go()):
        typer.echo(json.dumps(r, ensure_ascii=False) if as_json else _line(r))
