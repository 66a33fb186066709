"""`gigunion telegram …` as real processes talking to the fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.locale import Locale
from tests.fakes.telegram_api import BOT_USERNAME, TOKEN, user_json

GIGUNION = [sys.executable, "-m", "bot"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, fake) -> dict[str, str]:  # type: ignore[no-untyped-def]
    e = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")}
    e.update(
        GIGUNION_HOME=str(tmp_path),
        GIGUNION_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        GIGUNION_TELEGRAM_TOKEN=TOKEN,
        GIGUNION_TELEGRAM_API_URL=fake.api_url,
        GIGUNION_TELEGRAM_WEBHOOK_SECRET="process-secret",
    )
    return e


async def gigunion(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *GIGUNION, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def test_polling_process_answers_start_and_stops_cleanly_on_sigterm(env, fake) -> None:  # type: ignore[no-untyped-def]
    proc = await gigunion(env, "telegram")
    try:
        update_id = await fake.push(fake.text(user_json(9001), "/start"))
        sent = await fake.wait_for(lambda: fake.requests("sendMessage", ok=True), seconds=60)
        assert sent[0].params["chat_id"] == 9001
        assert Locale().text("zh_CN", "join.agree") in str(sent[0].params["reply_markup"])
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode()
    assert code == 0, stderr
    # On the way out it confirmed the updates it had, so a restart will not fetch /start again.
    assert fake.requests("getUpdates")[-1].params["offset"] == update_id + 1
    assert "/start" not in stderr and TOKEN not in stderr  # logs hold update ids, never text or the token


async def test_join_link_prints_the_deep_link_and_writes_a_qr(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "station.png"
    proc = await gigunion(env, "telegram", "join-link", "station-12", "--qr", str(out))
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines()[0] == f"https://t.me/{BOT_USERNAME}?start=join-station-12"
    assert out.read_bytes().startswith(b"\x89PNG")


async def test_join_link_refuses_a_bad_source(env) -> None:  # type: ignore[no-untyped-def]
    proc = await gigunion(env, "telegram", "join-link", "no spaces!")
    await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2


async def test_set_webhook_registers_url_with_the_secret(env, fake) -> None:  # type: ignore[no-untyped-def]
    proc = await gigunion(env, "telegram", "set-webhook", "https://bot.example.org/telegram/webhook")
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    [call] = fake.requests("setWebhook")
    assert call.params["url"] == "https://bot.example.org/telegram/webhook"
    assert call.params["secret_token"] == "process-secret"
    assert call.params["allowed_updates"] == ["message", "callback_query"]
