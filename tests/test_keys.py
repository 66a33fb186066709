"""The secret key fails closed: never silently made for a database that holds data, never accepted when
empty, short, malformed or different; and `gigunion key rotate` moves everything to a new key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.errors import KeyProblem
from bot.runtime import running_bot
from bot.services import secret_key
from bot.services.crypto import Keyring, normalize_card_code
from bot.services.membership import verify_card
from bot.services.secret_key import rotate
from storage import Database
from tests.chat import Chat, join
from tests.test_join import walk_to

GOOD_KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"  # 43 characters, like a generated one


@pytest.fixture
def keyless(tmp_path: Path) -> Settings:
    """Settings that keep the key in the data folder's key file, as a real deployment does."""
    return Settings(home=str(tmp_path / "data"))


async def joined(settings: Settings, *phones: str) -> list[str]:
    """Members joined through the chat; their card codes."""
    async with running_bot(settings, run_jobs=False) as (app, dispatcher):
        for i, phone in enumerate(phones):
            await join(Chat(dispatcher, user=f"u{i}"), phone=phone)
        return [m.card_code for m in await members(app.db)]


async def members(db: Database):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        return await tx.members.all()


async def start(settings: Settings) -> None:
    async with running_bot(settings, run_jobs=False):
        pass


async def test_a_new_database_gets_a_new_private_key_and_keeps_it(keyless: Settings) -> None:
    await start(keyless)
    key_file = keyless.key_file()
    key = key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key) >= 43
    await start(keyless)
    assert key_file.read_text().strip() == key
    db = Database(keyless.database_url)
    try:
        async with db.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT fingerprint FROM keyring"))).scalar_one()
    finally:
        await db.close()
    assert stored == Keyring(key).fingerprint() and key not in stored


async def test_a_missing_key_file_is_refused_when_the_database_holds_members(keyless: Settings) -> None:
    await joined(keyless, "13800138000")
    key = keyless.key_file().read_text()
    keyless.key_file().unlink()
    with pytest.raises(KeyProblem) as refused:
        await start(keyless)
    assert str(keyless.key_file()) in refused.value.message and "missing" in refused.value.message
    assert str(keyless.sqlite_path()) in refused.value.message
    assert refused.value.exit_code == 3
    assert not keyless.key_file().exists()  # no new key was made
    # Putting the key back is all it takes.
    keyless.key_file().write_text(key)
    await start(keyless)


async def test_a_missing_key_is_refused_even_with_no_member_once_a_fingerprint_is_kept(keyless: Settings) -> None:
    await start(keyless)
    keyless.key_file().unlink()
    with pytest.raises(KeyProblem, match="missing"):
        await start(keyless)
    assert not keyless.key_file().exists()


async def test_a_different_key_is_refused(keyless: Settings) -> None:
    await joined(keyless, "13800138000")
    keyless.key_file().write_text(GOOD_KEY + "\n")
    with pytest.raises(KeyProblem) as refused:
        await start(keyless)
    assert "not the one" in refused.value.message and str(keyless.key_file()) in refused.value.message
    with pytest.raises(KeyProblem, match="GIGUNION_SECRET_KEY"):
        await start(replace(keyless, secret_key=GOOD_KEY))


async def test_a_database_from_before_fingerprints_is_checked_against_its_data(keyless: Settings) -> None:
    await joined(keyless, "13800138000")
    db = Database(keyless.database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM keyring"))
    finally:
        await db.close()
    right = keyless.key_file().read_text()
    keyless.key_file().write_text(GOOD_KEY)
    with pytest.raises(KeyProblem, match="not the one"):
        await start(keyless)
    keyless.key_file().write_text(right)
    await start(keyless)  # opens the members' phones: adopted, and from now on checked by fingerprint
    keyless.key_file().write_text(GOOD_KEY)
    with pytest.raises(KeyProblem, match="not the one"):
        await start(keyless)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("short-key", "too short"),
        ("a" * 60, "too simple"),
        ("0123456789abcdef" * 3, "too short"),  # 48 hex digits: 192 bits
        ("0123456789abcdefghij klmnopqrstuvwxyzABCDEFG", "malformed"),
        ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGé", "malformed"),
    ],
)
async def test_an_unusable_key_is_refused_with_its_reason_before_any_database_is_made(
    keyless: Settings, content: str, reason: str
) -> None:
    keyless.key_file().parent.mkdir(parents=True)
    keyless.key_file().write_text(content)
    with pytest.raises(KeyProblem, match=reason):
        await start(keyless)
    with pytest.raises(KeyProblem, match=reason):
        await start(replace(keyless, secret_key=content))
    assert not keyless.sqlite_path().exists()


def test_hex_and_generated_keys_are_long_enough() -> None:
    assert secret_key.checked("0123456789abcdef" * 4, "x") == "0123456789abcdef" * 4
    assert secret_key.checked(secret_key.new_key(), "x")


def test_the_command_says_what_is_wrong_in_a_line_or_two_with_exit_code_3(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")} | {"GIGUNION_HOME": str(tmp_path)}
    joined_ = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--user", "a"],
        input="/start\n同意\n/contact +8613800138000\n张三\n1\n1\n1\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert joined_.returncode == 0, joined_.stderr
    (tmp_path / "gigunion.key").unlink()
    for args in (["members", "list"], ["console", "--user", "a"]):
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args], input="", env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 3, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
        assert str(tmp_path / "gigunion.key") in done.stderr
        assert not (tmp_path / "gigunion.key").exists()


# -- rotation --------------------------------------------------------------------------------------


async def test_rotation_moves_every_protected_field_to_a_new_key(keyless: Settings) -> None:
    phones = ["13800138000", "13900139000"]
    old_codes = await joined(keyless, *phones)
    old_key = keyless.key_file().read_text().strip()
    async with running_bot(keyless, run_jobs=False) as (app, dispatcher):
        # A member's number typed by someone else: a membership with the number kept unlinked for staff.
        typist = Chat(dispatcher, user="typist")
        await walk_to(typist, "phone")
        for answer in (phones[0], "王五"):
            await typist.say(answer)
        for _ in range(3):
            await typist.tap(0)
        async with app.db.transaction() as tx:
            (unlinked,) = await tx.members.phone_unlinked()
            old_codes.append(unlinked.card_code)
        # A join left half-way: its phone is kept encrypted in the conversation.
        half = Chat(dispatcher, user="half")
        await walk_to(half, "phone")
        await half.say("13700137000")
        done = await rotate(keyless, app.db, app.keyring, app.now())
        assert done.members == 3 and done.conversations == 1

    new_key = keyless.key_file().read_text().strip()
    assert new_key != old_key and keyless.key_file().stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in keyless.key_file().parent.glob("gigunion.key*")) == ["gigunion.key"]
    async with running_bot(keyless, run_jobs=False) as (app, dispatcher):
        ring = app.keyring
        assert ring.fingerprint() == Keyring(new_key).fingerprint()
        async with app.db.transaction() as tx:
            people = await tx.members.all()
            assert sorted(ring.decrypt(m.phone_enc) for m in people) == sorted([*phones, phones[0]])
            assert [m.id for m in await tx.members.phone_unlinked()] == [unlinked.id]
            for phone in phones:  # found by phone under the new key
                assert await tx.members.by_phone_hash(ring.lookup_hash(phone)) is not None
            # Card codes are reissued: the new ones verify, the old ones do not.
            for m, old_code in zip(people, old_codes, strict=True):
                assert (await verify_card(tx, ring, app.profile, m.card_code)).genuine
                assert m.card_code != old_code
                assert not (await verify_card(tx, ring, app.profile, old_code)).genuine
            assert next(e.action for e in await tx.audit.entries()) == "key.rotated"
        # The half-done join carries on with the number it was given, now kept under the new key.
        half = Chat(dispatcher, user="half")
        await half.say("李四")
        await half.tap(0)
        await half.tap(0)
        await half.tap(0)
        async with app.db.transaction() as tx:
            finished = await tx.members.by_phone_hash(ring.lookup_hash("13700137000"))
            assert finished is not None and ring.decrypt(finished.phone_enc) == "13700137000"
    keyless.key_file().write_text(old_key)
    with pytest.raises(KeyProblem, match="not the one"):
        await start(keyless)


async def test_a_rotation_cut_off_after_its_commit_is_finished_at_the_next_start(
    keyless: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await joined(keyless, "13800138000")

    def crash(path: Path) -> None:
        raise SystemExit("power cut")

    monkeypatch.setattr(secret_key, "_finish_swap", crash)
    async with running_bot(keyless, run_jobs=False) as (app, _):
        with pytest.raises(SystemExit):
            await rotate(keyless, app.db, app.keyring, app.now())
    monkeypatch.undo()
    waiting = keyless.key_file().with_name("gigunion.key.new").read_text().strip()
    async with running_bot(keyless, run_jobs=False) as (app, _):
        assert app.keyring.fingerprint() == Keyring(waiting).fingerprint()
        async with app.db.transaction() as tx:
            (m,) = await tx.members.all()
            assert app.keyring.decrypt(m.phone_enc) == "13800138000"
    assert keyless.key_file().read_text().strip() == waiting
    assert not keyless.key_file().with_name("gigunion.key.old").exists()


async def test_a_rotation_cut_off_before_its_commit_changes_nothing(
    keyless: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await joined(keyless, "13800138000")
    key = keyless.key_file().read_text().strip()

    async def crash(*args: object) -> bool:
        raise SystemExit("power cut")

    monkeypatch.setattr(secret_key.KeyringRepo, "replace", crash)
    async with running_bot(keyless, run_jobs=False) as (app, _):
        with pytest.raises(SystemExit):
            await rotate(keyless, app.db, app.keyring, app.now())
    monkeypatch.undo()
    async with running_bot(keyless, run_jobs=False) as (app, _):
        async with app.db.transaction() as tx:
            (m,) = await tx.members.all()
            assert app.keyring.decrypt(m.phone_enc) == "13800138000"
    assert keyless.key_file().read_text().strip() == key


def test_key_rotate_command_says_card_codes_are_reissued(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")} | {"GIGUNION_HOME": str(tmp_path)}

    def gigunion(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
        )

    joined_ = gigunion("console", "--user", "a", stdin="/start\n同意\n/contact +8613800138000\n张三\n1\n1\n1\n")
    old_code = re.search(r"核验码：(\w{4}-\w{4})", joined_.stdout).group(1)
    done = gigunion("key", "rotate")
    assert done.returncode == 0, done.stderr
    assert "REISSUED" in done.stdout and "1 member" in done.stdout
    assert gigunion("card", "verify", old_code).returncode == 1
    listed = json.loads(gigunion("members", "list", "--json").stdout)
    assert listed[0]["phone"] == "138****8000"
    card = gigunion("console", "--user", "a", stdin="/card\n").stdout
    new_code = re.search(r"核验码：(\w{4}-\w{4})", card)
    assert new_code and normalize_card_code(new_code.group(1)) != normalize_card_code(old_code)
    assert gigunion("card", "verify", new_code.group(1)).returncode == 0


def test_a_secret_key_variable_set_but_empty_is_refused_not_taken_for_unset() -> None:
    from bot.config import load_settings
    from bot.errors import StartupProblem

    with pytest.raises(StartupProblem, match="SECRET_KEY is set but empty") as refused:
        load_settings(environ={"GIGUNION_SECRET_KEY": ""})
    assert refused.value.exit_code == 2
    assert load_settings(environ={}).secret_key is None  # unset: the key file is used


async def test_rotation_moves_claims_payout_details_to_the_new_key(keyless: Settings) -> None:
    from datetime import date

    await joined(keyless, "13800138000")
    async with running_bot(keyless, run_jobs=False) as (app, _):
        old = app.keyring
        async with app.db.transaction() as tx:
            (member,) = await tx.members.all()
            claim = await tx.claims.create(
                member_id=member.id, type="property", incident_date=date(2026, 11, 28), description="暴雨进水",
                claimed_fen=120050, missing=(), payout_kind="bank", payout_holder_enc=old.encrypt("张三"),
                payout_account_enc=old.encrypt("6222020200112233445"), id_number_enc=old.encrypt("11010519491231002X"),
                now=app.now(), actor="test",
            )  # fmt: skip
        await rotate(keyless, app.db, old, app.now())
    async with running_bot(keyless, run_jobs=False) as (app, _):
        async with app.db.transaction() as tx:
            moved = await tx.claims.by_number(claim.number)
        assert moved is not None
        new = app.keyring
        assert new.decrypt(moved.payout_holder_enc) == "张三"
        assert new.decrypt(moved.payout_account_enc) == "6222020200112233445"
        assert moved.id_number_enc is not None and new.decrypt(moved.id_number_enc) == "11010519491231002X"
