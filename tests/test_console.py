"""`gigunion console` as a real process: scripted through stdin, in text and JSON modes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

GIGUNION = [sys.executable, "-m", "bot"]
NUMBER = re.compile(r"HB\d{10}")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")}
    e["GIGUNION_HOME"] = str(tmp_path)
    e["GIGUNION_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    return e


def gigunion(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GIGUNION, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False
    )


JOIN_ZH = "/start\n同意\n/contact +8613800138000\n张三\n1\n1\n1\n"


def test_piped_join_in_chinese(env: dict[str, str], tmp_path: Path) -> None:
    done = gigunion(env, "console", "--user", "alice", stdin=JOIN_ZH)
    assert done.returncode == 0, done.stderr
    assert "工会会员证" in done.stdout and "张三" in done.stdout and NUMBER.search(done.stdout)
    assert "[1] 同意" in done.stdout
    key = tmp_path / "gigunion.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    # The same key is reused: the card code printed verifies in a new process.
    code = re.search(r"核验码：(\w{4}-\w{4})", done.stdout).group(1)
    check = gigunion(env, "card", "verify", code.lower())
    assert check.returncode == 0 and "GENUINE" in check.stdout and "张*" in check.stdout
    assert "138****8000" in check.stdout
    fake = gigunion(env, "card", "verify", "AAAA-BBBB")
    assert fake.returncode == 1 and "NOT GENUINE" in fake.stdout


def test_piped_join_in_english_accepting_the_offered_name(env: dict[str, str]) -> None:
    inputs = "/start\nagree\n/contact +8613800138000\n1\n1\n1\n1\n"
    done = gigunion(env, "console", "--user", "alice", "--lang", "en", stdin=inputs)
    assert done.returncode == 0, done.stderr
    assert "Union membership card" in done.stdout and "Name: alice" in done.stdout
    assert NUMBER.search(done.stdout)


def test_json_mode_is_one_line_per_message_and_marks_turn_ends(env: dict[str, str]) -> None:
    done = gigunion(env, "console", "--user", "alice", "--json", stdin=JOIN_ZH)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sum(1 for line in lines if line == {"turn_end": True}) == JOIN_ZH.count("\n")
    messages = [line for line in lines if "text" in line]
    assert set(messages[0]) == {"text", "buttons", "requests", "image"}
    assert messages[1]["requests"] == ["contact"]
    card = messages[-1]
    assert NUMBER.search(card["text"]) and card["image"]
    assert {"label": "我的会员证"} in card["buttons"]


def test_a_killed_process_resumes_at_the_same_step(env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [*GIGUNION, "console", "--user", "bob", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdin and proc.stdout
    for line in ("/start", "同意", "/contact 13900139000"):
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        while json.loads(proc.stdout.readline()) != {"turn_end": True}:
            pass
    proc.kill()  # SIGKILL between two turns: no clean shutdown
    proc.wait(timeout=10)
    done = gigunion(env, "console", "--user", "bob", "--json", stdin="王五\n")
    first = json.loads(done.stdout.splitlines()[0])
    assert "平台" in first["text"]  # the name was taken at the name step; now the platform is asked


def test_staff_and_members_commands(env: dict[str, str]) -> None:
    assert gigunion(env, "console", "--user", "alice", stdin=JOIN_ZH).returncode == 0
    added = gigunion(env, "staff", "add", "console:carol", "--role", "admin", "--name", "Carol")
    assert added.returncode == 0, added.stderr
    bad_role = gigunion(env, "staff", "add", "console:dan", "--role", "boss", "--name", "Dan")
    assert bad_role.returncode != 0 and "role" in bad_role.stderr
    bad_id = gigunion(env, "staff", "add", "carol", "--role", "admin", "--name", "Carol")
    assert bad_id.returncode != 0
    assert "console:carol\tadmin\tCarol" in gigunion(env, "staff", "list").stdout
    listed = json.loads(gigunion(env, "members", "list", "--json").stdout)
    assert listed[0]["name"] == "张*" and listed[0]["phone"] == "138****8000"
    number = listed[0]["number"]
    shown = gigunion(env, "members", "show", number)
    assert "138****8000" in shown.stdout and "13800138000" not in shown.stdout
    assert gigunion(env, "members", "show", "HB0000").returncode == 1
    # Staff see the staff menu in the bot; a member does not.
    carol = gigunion(env, "console", "--user", "carol", stdin="/menu\n/staff\n")
    assert "工作人员菜单" in carol.stdout and "目前会员 1 人" in carol.stdout
    alice = gigunion(env, "console", "--user", "alice", stdin="/menu\n/staff\n")
    assert "工作人员菜单" not in alice.stdout and "只对工会工作人员开放" in alice.stdout
    assert gigunion(env, "staff", "remove", "console:carol").returncode == 0
    assert gigunion(env, "staff", "remove", "console:carol").returncode == 1


def test_every_command_has_help(env: dict[str, str]) -> None:
    for args in (
        ["--help"],
        ["console", "--help"],
        ["db", "upgrade", "--help"],
        ["card", "verify", "--help"],
        ["staff", "add", "--help"],
        ["members", "list", "--help"],
        ["serve", "--help"],
    ):
        done = gigunion(env, *args)
        assert done.returncode == 0 and "Usage" in done.stdout, args


def test_db_upgrade_and_config_file(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "union.toml"
    config.write_text(
        f"""database_url = "sqlite+aiosqlite:///{tmp_path / "other.db"}"
secret_key = "from-the-file-0123456789abcdefghijklmnopqrstuvwxyz"
[union]
name = {{ zh_CN = "测试联合工会", en = "Test Union" }}
member_prefix = "TS"
platforms = ["甲平台"]
[[union.work_kinds]]
id = "rider"
label = {{ zh_CN = "骑手", en = "Rider" }}
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in env.items() if k != "GIGUNION_DATABASE_URL"}
    assert gigunion(env, "--config", str(config), "db", "upgrade").returncode == 0
    assert (tmp_path / "other.db").exists()
    done = gigunion(env, "--config", str(config), "console", stdin="/start\n1\n13800138000\n张三\n1\n1\n1\n")
    assert "测试联合工会" in done.stdout and re.search(r"TS\d{10}", done.stdout)
    assert not (tmp_path / "gigunion.key").exists()  # the file's secret key is used


def test_in_a_terminal_it_is_an_interactive_chat(env: dict[str, str]) -> None:
    import pty
    import select

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [*GIGUNION, "console", "--user", "tty"], stdin=terminal, stdout=terminal, stderr=terminal, env=env
    )
    os.close(terminal)
    seen = b""

    def read_until(marker: bytes, seconds: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                seen += os.read(controller, 4096)
        assert marker in seen, seen.decode(errors="replace")[-500:]

    try:
        read_until(b"> ")
        os.write(controller, b"/start\n")
        read_until("[1] 同意".encode())
        seen = b""
        os.write(controller, b"1\n")
        read_until("手机号".encode())
        read_until(b"> ")
        os.write(controller, b"\x04")  # Ctrl-D ends the chat
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
