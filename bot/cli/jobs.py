"""`gigunion jobs …`: scheduled work (housekeeping now; reminders and scheduled broadcasts later).

Every bot process (`serve`, `telegram`) runs due jobs itself. `jobs run` is for a deployment that also
wants a cron job or systemd timer to do it, or none of those running; `jobs list` shows what waits and
what failed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import open_bot, run, settings

app = typer.Typer(help="Scheduled jobs: run the due ones, or list them.", no_args_is_help=True)


@app.command("run")
def jobs_run(
    limit: Annotated[int, typer.Option(min=1, help="Run at most this many jobs.")] = 1000,
) -> None:
    """Run every job that is due now, once each, then exit (for cron or a systemd timer)."""

    async def go() -> int:
        from bot.runtime import ensure_housekeeping, running_bot
        from bot.services.jobs import new_runner_id, run_due

        async with running_bot(settings(), run_jobs=False) as (bot, _):
            await ensure_housekeeping(bot)
            return await run_due(bot, runner_id=new_runner_id(), limit=limit)

    typer.echo(f"{run(go())} job(s) run")


@app.command("list")
def jobs_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the jobs that are due now, those running, and those that failed for good."""
    import json

    from bot.services.jobs import report

    async def go():  # type: ignore[no-untyped-def]
        async with open_bot(settings(), reading=True) as bot:
            return await report(bot)  # type: ignore[arg-type]  # needs only the database and the clock

    jobs = run(go())
    sections = {"due": jobs.due, "running": jobs.running, "failed": jobs.failed}
    if as_json:
        listed = {
            name: [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "key": j.key,
                    "status": j.status,
                    "due_at": j.due_at.isoformat(),
                    "attempts": j.attempts,
                    "last_error": j.last_error,
                }
                for j in section
            ]
            for name, section in sections.items()
        }
        next_due = jobs.next_due.isoformat() if jobs.next_due else None
        typer.echo(json.dumps({"counts": jobs.counts, "next_due": next_due, **listed}, ensure_ascii=False, indent=1))
        return
    counts = ", ".join(f"{status} {n}" for status, n in sorted(jobs.counts.items())) or "no jobs"
    typer.echo(
        f"jobs: {counts}; next due {jobs.next_due:%Y-%m-%d %H:%M:%S} UTC" if jobs.next_due else f"jobs: {counts}"
    )
    for name, section in sections.items():
        for j in section:
            error = f"\t{j.last_error}" if j.last_error else ""
            typer.echo(f"{name}\t{j.id}\t{j.kind}\t{j.key or '-'}\t{j.due_at:%Y-%m-%d %H:%M:%S}\t{j.attempts}{error}")
