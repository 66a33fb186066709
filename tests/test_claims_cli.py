"""`gigunion claims …` through real processes: listing, showing masked, deciding (a SUBMITTED claim is
taken first), paying, exporting (masked unless --unmasked, which is audited), the exit codes, and a
decision from the CLI racing one from the chat on the same SQLite file."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import claims as cli
from bot.services import claims as service
from storage.schema import outbox
from tests.conftest import gigunion_env
from tests.test_claims_domain import BANK_ACCOUNT, HOLDER, ID_NUMBER, NOW, SECRET, draft, make_member

HERE = Path(__file__).resolve().parent.parent


def environment(tmp_path: Path) -> dict[str, str]:
    return gigunion_env(tmp_path, secret_key=SECRET)


def gigunion(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )


# Opens the bot's database as the bot would (the key's fingerprint recorded) with `flows={}`.
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


def seed(tmp_path: Path, claims: int = 1, amount: int = 80000) -> list[str]:
    """A member with `claims` SUBMITTED claims; their numbers."""

    async def go() -> list[str]:
        app = await _open(tmp_path)
        try:
            numbers = []
            async with app.db.transaction() as tx:
                member = await make_member(tx)
                for i in range(claims):
                    await tx.media.add(f"m{i}", "0" * 64, "image/jpeg", 10, NOW)
                    d = draft(app, (f"m{i}", "diagnosis"), amount=amount)
                    numbers.append((await service.submit(tx, app, member, d, now=NOW, actor="x")).number)
            return numbers
        finally:
            await app.db.close()

    return asyncio.run(go())


def inspect(tmp_path: Path, number: str):  # type: ignore[no-untyped-def]
    """The claim, its history and the audit and outbox as the database holds them now."""

    async def go():  # type: ignore[no-untyped-def]
        app = await _open(tmp_path)
        try:
            async with app.db.transaction() as tx:
                claim = await tx.claims.by_number(number)
                assert claim is not None
                history = await tx.claims.history(claim.id)
                audit = await tx.audit.entries()
                told = (await tx.conn.execute(select(func.count()).select_from(outbox))).scalar_one()
            return claim, history, audit, told
        finally:
            await app.db.close()

    return asyncio.run(go())


def test_the_copies_for_help_texts_match_the_service() -> None:
    assert cli.STATUSES == service.STATUSES
    assert cli.REJECT_REASONS == service.REJECT_REASONS


def test_decide_on_a_submitted_claim_takes_it_first_and_both_steps_are_recorded(tmp_path: Path) -> None:
    (number,) = seed(tmp_path)
    done = gigunion(tmp_path, "claims", "decide", number, "approve", "--amount", "650.5")
    assert done.returncode == 0, done.stderr
    assert f"{number}: approved" in done.stdout
    claim, history, _, told = inspect(tmp_path, number)
    assert (claim.status, claim.approved_fen, claim.assignee) == ("approved", 65050, "cli")
    # Submitted (to both identities, the submitter "x" being neither), taken, approved: each to both.
    assert told == 3 * 2
    assert [(e.from_status, e.to_status, e.actor) for e in history] == [
        (None, "submitted", "x"),
        ("submitted", "under_review", "cli"),
        ("under_review", "approved", "cli"),
    ]
    paid = gigunion(tmp_path, "claims", "paid", number, "--ref", "ICBC-20261130-01")
    assert paid.returncode == 0, paid.stderr
    claim, history, _, _ = inspect(tmp_path, number)
    assert (claim.status, claim.payment_ref, history[-1].actor) == ("paid", "ICBC-20261130-01", "cli")


def test_reject_and_need_info_carry_their_reason_and_note(tmp_path: Path) -> None:
    first, second = seed(tmp_path, claims=2)
    done = gigunion(tmp_path, "claims", "decide", first, "reject", "--reason", "outside_window", "--note", "超过180天")
    assert done.returncode == 0, done.stderr
    claim, history, _, _ = inspect(tmp_path, first)
    assert (claim.status, claim.reason_code, claim.reason_text, history[-1].note) == (
        "rejected", "outside_window", "超过180天", "超过180天",
    )  # fmt: skip
    done = gigunion(tmp_path, "claims", "decide", second, "need-info", "--note", "发票看不清", "--missing", "receipts")
    assert done.returncode == 0, done.stderr
    claim, _, _, _ = inspect(tmp_path, second)
    assert (claim.status, claim.missing, claim.info_note) == ("needs_info", ("receipts",), "发票看不清")


def test_an_approved_or_rejected_claim_is_appealed_back_into_review_once(tmp_path: Path) -> None:
    (number,) = seed(tmp_path)
    early = gigunion(tmp_path, "claims", "decide", number, "appeal", "--note", "会员申诉")
    assert early.returncode == 1 and "cannot be appealed from this state" in early.stderr  # submitted
    assert gigunion(tmp_path, "claims", "decide", number, "reject", "--reason", "other", "--note", "x").returncode == 0
    assert gigunion(tmp_path, "claims", "decide", number, "appeal").returncode == 2  # why, for the member
    done = gigunion(tmp_path, "claims", "decide", number, "appeal", "--note", "会员补了证明，重新看")
    assert done.returncode == 0, done.stderr
    claim, history, _, _ = inspect(tmp_path, number)
    assert (claim.status, claim.appealed, history[-1].note) == ("under_review", True, "会员补了证明，重新看")
    assert gigunion(tmp_path, "claims", "decide", number, "approve", "--amount", "100").returncode == 0
    again = gigunion(tmp_path, "claims", "decide", number, "appeal", "--note", "再看一次")
    assert again.returncode == 1 and "reviewed again once already" in again.stderr


def test_refusals_exit_1_with_one_line_saying_why(tmp_path: Path) -> None:
    (number,) = seed(tmp_path, amount=80000)
    over = gigunion(tmp_path, "claims", "decide", number, "approve", "--amount", "800.01")
    assert over.returncode == 1 and "at most the 800.00 yuan claimed" in over.stderr
    assert len(over.stderr.strip().splitlines()) == 1
    claim, history, _, _ = inspect(tmp_path, number)
    assert claim.status == "submitted" and len(history) == 1  # the take went with the refused decision
    unpaid = gigunion(tmp_path, "claims", "paid", number, "--ref", "R1")
    assert unpaid.returncode == 1 and "cannot be marked paid from this state" in unpaid.stderr
    assert gigunion(tmp_path, "claims", "decide", number, "approve", "--amount", "800").returncode == 0
    again = gigunion(tmp_path, "claims", "decide", number, "reject", "--reason", "other", "--note", "x")
    assert again.returncode == 1 and "is approved" in again.stderr
    missing = gigunion(tmp_path, "claims", "decide", "LP2026-999999", "approve", "--amount", "1")
    assert missing.returncode == 1 and "no claim numbered LP2026-999999" in missing.stderr
    assert gigunion(tmp_path, "claims", "show", "LP2026-999999").returncode == 1


@pytest.mark.parametrize(
    "args",
    [
        ["decide", "LP2026-000001", "approve"],
        ["decide", "LP2026-000001", "approve", "--amount", "0"],
        ["decide", "LP2026-000001", "approve", "--amount", "1.234"],
        ["decide", "LP2026-000001", "reject", "--reason", "because", "--note", "x"],
        ["decide", "LP2026-000001", "reject", "--reason", "other"],
        ["decide", "LP2026-000001", "need-info"],
        ["decide", "LP2026-000001", "pay"],
        ["paid", "LP2026-000001"],
        ["list", "--status", "lost"],
        ["export", "--month", "2026-13", "--out", "x.csv"],
        ["export", "--month", "11/2026", "--out", "x.csv"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    seed(tmp_path)
    assert gigunion(tmp_path, "claims", *args).returncode == 2


def test_list_json_gives_one_object_per_claim(tmp_path: Path) -> None:
    first, second = seed(tmp_path, claims=2)
    assert gigunion(tmp_path, "claims", "decide", second, "approve", "--amount", "100").returncode == 0
    listed = gigunion(tmp_path, "claims", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["number"] for r in rows] == [first, second]
    for key in ("number", "status", "type", "claimed_fen", "approved_fen", "documents", "created_at"):
        assert all(key in r for r in rows), key
    assert (rows[1]["status"], rows[1]["approved_fen"], rows[1]["documents"]) == ("approved", 10000, ["diagnosis"])
    assert rows[0]["claimed_fen"] == 80000 and rows[0]["approved_fen"] is None
    only = gigunion(tmp_path, "claims", "list", "--status", "submitted")
    assert only.returncode == 0 and first in only.stdout and second not in only.stdout


def test_show_masks_the_payout_details(tmp_path: Path) -> None:
    (number,) = seed(tmp_path)
    shown = gigunion(tmp_path, "claims", "show", number)
    assert shown.returncode == 0, shown.stderr
    assert BANK_ACCOUNT[-4:] in shown.stdout and BANK_ACCOUNT not in shown.stdout
    assert ID_NUMBER not in shown.stdout and HOLDER not in shown.stdout
    assert "submitted" in shown.stdout and "history:" in shown.stdout


def test_export_is_masked_by_default_and_unmasked_is_audited(tmp_path: Path) -> None:
    (number,) = seed(tmp_path)
    out = tmp_path / "claims.csv"
    done = gigunion(tmp_path, "claims", "export", "--month", "2026-11", "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text("utf-8-sig")
    assert number in text and BANK_ACCOUNT[-4:] in text
    for secret in (BANK_ACCOUNT, ID_NUMBER, HOLDER):
        assert secret not in text
    _, _, audit, _ = inspect(tmp_path, number)
    assert not [a for a in audit if a.action == "claims.exported_unmasked"]
    done = gigunion(tmp_path, "claims", "export", "--month", "2026-11", "--out", str(out), "--unmasked")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert [(r["number"], r["account"], r["id_number"], r["holder"]) for r in rows] == [
        (number, BANK_ACCOUNT, ID_NUMBER, HOLDER)
    ]
    _, _, audit, _ = inspect(tmp_path, number)
    assert [(a.actor, a.subject) for a in audit if a.action == "claims.exported_unmasked"] == [("cli", "2026-11")]
    december = gigunion(tmp_path, "claims", "export", "--month", "2026-12", "--out", str(out))
    assert december.returncode == 0 and list(csv.DictReader(out.open(encoding="utf-8-sig"))) == []


# The chat's decision, in a process of its own: a reviewer rejecting the claim through the service
# inside a turn, started at the same moment as the CLI's approval.
CHAT = textwrap.dedent(
    """
    import asyncio, sys, time
    sys.path.insert(0, {root!r})
    from tests.test_claims_cli import _open
    from bot.services import claims

    async def main(number, start):
        app = await _open(__import__("pathlib").Path({home!r}))
        time.sleep(max(0.0, start - time.time()))
        async def turn(tx):
            try:
                await claims.decide_from_cli(tx, app, number, "rejected", now=app.now(),
                                             actor="telegram:staff1", reason_code="duplicate", note="重复")
                return "applied"
            except claims.ClaimRefused as e:
                return e.reason
        print(await app.db.run_turn(turn))
        await app.db.close()

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
    """
)


def test_a_decision_in_the_cli_and_one_in_the_chat_at_once_apply_exactly_one(tmp_path: Path) -> None:
    numbers = seed(tmp_path, claims=4)
    script = tmp_path / "chat.py"
    script.write_text(CHAT.format(root=str(HERE), home=str(tmp_path)))
    env = environment(tmp_path)
    winners = []
    # The CLI process is started this long before the chat's turn: its start-up time is not known, so
    # the offsets span it and the two land on the database together at least once.
    for number, lead in zip(numbers, (0.2, 0.6, 1.0, 1.5), strict=True):
        start = time.time() + 2.0  # both processes are up by then, then go at once
        chat = subprocess.Popen(
            [sys.executable, str(script), number, str(start)], env=env, stdout=subprocess.PIPE, text=True, cwd=HERE
        )
        time.sleep(max(0.0, start - time.time() - lead))
        cli_done = gigunion(tmp_path, "claims", "decide", number, "approve", "--amount", "100")
        chat_out, _ = chat.communicate(timeout=120)
        chat_applied = chat_out.strip() == "applied"
        assert (cli_done.returncode == 0) != chat_applied, (cli_done.returncode, chat_out, cli_done.stderr)
        claim, history, _, _ = inspect(tmp_path, number)
        decisions = [e for e in history if e.to_status in ("approved", "rejected")]
        assert len(decisions) == 1 and claim.status == decisions[0].to_status
        assert [e.to_status for e in history].count("under_review") == 1
        winners.append("chat" if chat_applied else "cli")
