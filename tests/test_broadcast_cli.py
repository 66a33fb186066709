"""`gigunion broadcast …` through real processes: create (preview, audience, --json), status and list
--json, pause/resume/cancel, wrong input (bad segment, missing file, unknown id, a cancelled broadcast),
and a sender killed with SIGKILL mid-broadcast: resumed, it finishes with nobody skipped and only the
messages in flight at the kill sent twice (counted on the fake Bot API)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from storage.schema import broadcast_recipients
from tests.broadcast_helpers import add_members, chat_of, mute
from tests.conftest import gigunion_env
from tests.fakes.telegram_api import TOKEN
from tests.fakes.telegram_harness import fake_api

HERE = Path(__file__).resolve().parent.parent
SECRET = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
FIELDS = {"id", "state", "recipients", "sent", "failed", "unreachable", "skipped_muted"}


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return gigunion_env(tmp_path, secret_key=SECRET, **extra)


def gigunion(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=environment(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )


async def _open(tmp_path: Path):  # type: ignore[no-untyped-def]
    from bot.config import Settings
    from bot.engine.context import BotContext
    from bot.locale import Locale
    from bot.services.secret_key import open_keyring
    from storage import Database, migrate

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}", secret_key=SECRET, home=str(tmp_path)
    )
    db = Database(settings.database_url)
    await migrate.upgrade(db)
    keyring = await open_keyring(settings, db, may_create=True)
    return BotContext(settings=settings, db=db, keyring=keyring, locale=Locale(), flows={})


async def seed(tmp_path: Path, count: int, muted: int = 0) -> None:
    app = await _open(tmp_path)
    try:
        async with app.db.transaction() as tx:
            ids = await add_members(tx, count)
            await mute(tx, ids[:muted])
    finally:
        await app.db.close()


async def sending_rows(tmp_path: Path) -> int:
    app = await _open(tmp_path)
    try:
        async with app.db.transaction() as tx:
            q = select(func.count()).where(broadcast_recipients.c.status == "sending")
            return (await tx.conn.execute(q)).scalar_one()
    finally:
        await app.db.close()


def notice_file(tmp_path: Path, text: str = "本周六微笑集市，欢迎来湖滨驿站。", name: str = "notice.md") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_create_status_list_and_state_changes(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path, 5, muted=2))
    made = gigunion(tmp_path, "broadcast", "create", "--text-file", str(notice_file(tmp_path)), "--segment", "all")
    assert made.returncode == 0, made.stderr
    assert "本周六微笑集市" in made.stdout and "关闭通知" in made.stdout and "/mute" in made.stdout
    assert "3 members will get it" in made.stdout
    js = gigunion(
        tmp_path, "broadcast", "create", "--text-file", str(notice_file(tmp_path)), "--segment", "all", "--json"
    )
    created = json.loads(js.stdout)
    assert (created["id"], created["state"], created["audience"], created["muted"]) == (2, "draft", 3, 2)

    status = json.loads(gigunion(tmp_path, "broadcast", "status", "1", "--json").stdout)
    assert FIELDS <= set(status) and status["state"] == "draft"
    lines = gigunion(tmp_path, "broadcast", "list", "--json").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [2, 1] and all(FIELDS <= set(json.loads(x)) for x in lines)

    assert gigunion(tmp_path, "broadcast", "pause", "1").returncode == 1  # a draft is not being sent
    # The console members have no channel here; a broadcast to Telegram members without a token waits.
    sent = gigunion(tmp_path, "broadcast", "send", "1", "--yes", "--background")
    assert sent.returncode == 0, sent.stderr
    status = json.loads(gigunion(tmp_path, "broadcast", "status", "1", "--json").stdout)
    assert (status["state"], status["recipients"], status["skipped_muted"], status["queued"]) == ("sending", 3, 2, 3)
    assert "paused" in gigunion(tmp_path, "broadcast", "pause", "1").stdout
    assert gigunion(tmp_path, "broadcast", "pause", "1").returncode == 1
    assert "handed to the running bot" in gigunion(tmp_path, "broadcast", "resume", "1", "--background").stdout
    assert json.loads(gigunion(tmp_path, "broadcast", "status", "1", "--json").stdout)["state"] == "sending"
    assert "cancelled" in gigunion(tmp_path, "broadcast", "cancel", "1").stdout
    refused = gigunion(tmp_path, "broadcast", "send", "1", "--yes")
    assert refused.returncode == 1 and "cancelled" in refused.stderr
    assert gigunion(tmp_path, "broadcast", "resume", "1").returncode == 1
    assert gigunion(tmp_path, "broadcast", "cancel", "1").returncode == 1
    assert gigunion(tmp_path, "broadcast", "resume", "2").returncode == 1  # never sent: `send` it


def test_wrong_input(tmp_path: Path) -> None:
    asyncio.run(seed(tmp_path, 1))
    text = str(notice_file(tmp_path))
    for args, hint in (
        (["--text-file", text, "--segment", "platform=不存在"], "platform"),
        (["--text-file", text, "--segment", "colour=red"], "colour=red"),
        (["--text-file", text, "--segment", "since=tomorrow"], "tomorrow"),
        (["--text-file", str(tmp_path / "missing.md"), "--segment", "all"], "missing.md"),
        (["--text-file", text, "--segment", "all", "--at", "next friday"], "2026-12-05 09:00"),
        (["--text-file", text, "--segment", "all", "--at", "2020-01-01 09:00"], "passed"),
        (["--text-file", str(notice_file(tmp_path, "   ", "blank.md")), "--segment", "all"], "empty"),
        (["--text-file", text, "--segment", "all", "--picture", str(tmp_path / "nope.png")], "nope.png"),
    ):
        result = gigunion(tmp_path, "broadcast", "create", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert hint in " ".join(result.stderr.split()), (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert (
        gigunion(tmp_path, "broadcast", "create", "--text-file", text, "--segment", "all", "--event", "77").returncode
        == 1
    )
    for command in (["status", "9"], ["send", "9", "--yes"], ["pause", "9"], ["resume", "9"], ["cancel", "9"]):
        result = gigunion(tmp_path, "broadcast", *command)
        assert result.returncode == 1 and "Traceback" not in result.stderr, command
    assert gigunion(tmp_path, "broadcast", "status", "abc").returncode == 2
    assert gigunion(tmp_path, "broadcast", "list", "--json").stdout == ""


async def test_kill_mid_broadcast_then_resume(tmp_path: Path) -> None:
    members, rate = 600, 150
    await seed(tmp_path, members)
    config = tmp_path / "gigunion.toml"
    config.write_text(f"[broadcast]\ntelegram_rate = {rate}\npaid_broadcast = true\n", "utf-8")
    async with fake_api() as fake:
        fake.enforce(rate=rate, per_chat=1)
        env = environment(tmp_path, telegram_token=TOKEN, telegram_api_url=fake.api_url, config=str(config))

        async def gigunion_async(*args: str) -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                *args,
                env=env,
                cwd=HERE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )

        made = await gigunion_async(
            "broadcast", "create", "--text-file", str(notice_file(tmp_path)), "--segment", "all", "--json"
        )
        out, err = await made.communicate()
        broadcast_id = str(json.loads(out)["id"])
        sender = await gigunion_async("broadcast", "send", broadcast_id, "--yes")
        await fake.wait_for(lambda: sum(fake.delivered.values()) >= 200, 60)
        os.kill(sender.pid, signal.SIGKILL)
        await sender.wait()
        delivered_at_kill = sum(fake.delivered.values())
        in_flight = await sending_rows(tmp_path)
        assert delivered_at_kill < members
        assert in_flight <= 200  # a batch and the workers' messages, not the broadcast

        resumed = await gigunion_async("broadcast", "resume", broadcast_id)
        out, err = await asyncio.wait_for(resumed.communicate(), 120)
        assert resumed.returncode == 0, err.decode()
        per_chat = Counter(c.params["chat_id"] for c in fake.requests("sendMessage", ok=True))
        assert set(per_chat) == {chat_of(n) for n in range(1, members + 1)}  # nobody skipped
        duplicates = sum(n - 1 for n in per_chat.values())
        assert duplicates <= in_flight
        assert fake.over_limit == 0

        status = await gigunion_async("broadcast", "status", broadcast_id, "--json")
        out, _ = await status.communicate()
        report = json.loads(out)
        assert (report["state"], report["sent"], report["queued"]) == ("done", members, 0)
