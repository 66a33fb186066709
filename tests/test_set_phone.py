"""`gigunion members set-phone NUMBER PHONE` as a real process: staff change a member's phone from the
desk; the member is then found by the new phone, the card still verifies, and the audit names the
member but never the phone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.runtime import running_bot
from bot.services.membership import verify_card
from storage.members import Member
from tests.chat import Chat, join

ALICE, BOB, NEW = "13800138000", "13900139000", "13700137000"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")}
    e["GIGUNION_DATABASE_URL"] = settings.database_url
    e["GIGUNION_SECRET_KEY"] = settings.secret_key or ""
    e["GIGUNION_LOG_LEVEL"] = "WARNING"
    return e


def set_phone(env: dict[str, str], number: str, phone: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "members", "set-phone", number, phone],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def two_members(settings: Settings) -> tuple[Member, Member]:
    async with running_bot(settings) as (app, dispatcher):
        await join(Chat(dispatcher, user="alice"), phone=ALICE, name="张三")
        await join(Chat(dispatcher, user="bob"), phone=BOB, name="李四")
        async with app.db.transaction() as tx:
            return await tx.members.by_user_key("console:alice"), await tx.members.by_user_key("console:bob")


async def test_an_admin_changes_a_member_s_phone(settings: Settings, env: dict[str, str]) -> None:
    alice, _ = await two_members(settings)
    done = set_phone(env, alice.member_number.lower(), "+86 137-0013-7000")
    assert done.returncode == 0, done.stderr
    assert "137****7000" in done.stdout and NEW not in done.stdout + done.stderr
    async with running_bot(settings) as (app, dispatcher):
        async with app.db.transaction() as tx:
            found = await tx.members.by_phone_hash(app.keyring.lookup_hash(NEW))
            gone = await tx.members.by_phone_hash(app.keyring.lookup_hash(ALICE))
            card = await verify_card(tx, app.keyring, app.profile, alice.card_code)
            audit = await tx.audit.entries()
        assert found is not None and found.id == alice.id and gone is None
        assert app.keyring.decrypt(found.phone_enc) == NEW
        assert found.card_code == alice.card_code and found.name == alice.name
        assert card.genuine and card.number == alice.member_number and card.masked_phone == "137****7000"
        changed = [e for e in audit if e.action == "member.phone_changed"]
        assert [(e.actor, e.subject) for e in changed] == [("cli", alice.member_number)]
        assert not any(NEW in str(v) or "7000" in str(v) for e in audit for v in (e.actor, e.action, e.subject))
        # The member's own chat still reaches them, and "my data" shows the new phone, masked.
        mine = await Chat(dispatcher, user="alice").say("我的信息")
        assert "137****7000" in mine.text


async def test_a_phone_that_is_another_member_s_is_refused(settings: Settings, env: dict[str, str]) -> None:
    alice, bob = await two_members(settings)
    done = set_phone(env, bob.member_number, ALICE)
    assert done.returncode == 1
    assert "another member" in done.stdout and ALICE not in done.stdout + done.stderr
    async with running_bot(settings) as (app, _), app.db.transaction() as tx:
        assert (await tx.members.by_phone_hash(app.keyring.lookup_hash(ALICE))).id == alice.id
        assert (await tx.members.by_phone_hash(app.keyring.lookup_hash(BOB))).id == bob.id
        assert not [e for e in await tx.audit.entries() if e.action == "member.phone_changed"]


async def test_the_member_s_own_phone_again_changes_nothing(settings: Settings, env: dict[str, str]) -> None:
    alice, _ = await two_members(settings)
    done = set_phone(env, alice.member_number, ALICE)
    assert done.returncode == 0 and "already" in done.stdout
    async with running_bot(settings) as (app, _), app.db.transaction() as tx:
        assert not [e for e in await tx.audit.entries() if e.action == "member.phone_changed"]


@pytest.mark.parametrize("phone", ["12345", "23800138000", "+1 415 555 0100", "电话"])
async def test_a_bad_phone_is_a_usage_error(settings: Settings, env: dict[str, str], phone: str) -> None:
    alice, _ = await two_members(settings)
    done = set_phone(env, alice.member_number, phone)
    assert done.returncode == 2
    assert "mainland mobile" in done.stderr
    async with running_bot(settings) as (app, _), app.db.transaction() as tx:
        assert (await tx.members.by_phone_hash(app.keyring.lookup_hash(ALICE))).id == alice.id


async def test_no_such_member(settings: Settings, env: dict[str, str]) -> None:
    await two_members(settings)
    done = set_phone(env, "HB2026999999", NEW)
    assert done.returncode == 1 and "no member numbered HB2026999999" in done.stdout


def test_set_phone_has_help(env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "members", "set-phone", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "PHONE" in done.stdout and "Audited" in done.stdout
