"""Exit codes scripts can tell apart (0 done, 1 no, 2 usage or configuration, 3 database or key), the
checks of `staff add`, and `wechat menu push`'s help and --lang, through a real `gigunion` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.wechat import Language
from bot.locale import Locale
from tests.conftest import gigunion_env

OPENID = "oAbC-dEf_123456789012345678Z"  # 28 characters, as WeChat gives them


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return gigunion_env(tmp_path, "bot.db")


def gigunion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_help_documents_the_exit_codes(env: dict[str, str]) -> None:
    done = gigunion(env, "--help")
    assert done.returncode == 0
    told = " ".join(done.stdout.split())
    for said in ("0 done", "1 no", "2 a usage or configuration error", "3 the database or the key cannot be used"):
        assert said in told, told


def test_done_no_and_usage_are_told_apart(env: dict[str, str]) -> None:
    assert gigunion(env, "staff", "add", "console:ann", "--role", "admin", "--name", "Ann").returncode == 0
    assert gigunion(env, "staff", "list").returncode == 0
    assert gigunion(env, "card", "verify", "AAAA-BBBB").returncode == 1
    assert gigunion(env, "members", "show", "HB0000000000").returncode == 1
    assert gigunion(env, "staff", "remove", "console:nobody").returncode == 1
    assert gigunion(env, "staff", "list", "--no-such-option").returncode == 2
    assert gigunion(env, "staff", "add", "console:bob", "--role", "boss", "--name", "Bob").returncode == 2


@pytest.mark.parametrize(
    "identity",
    [
        "telegram:abc",
        "telegram:",
        "telegram:12 34",
        "wechat:oXYZ",  # too short for an openid
        f"wechat:{OPENID}!",
        "wechat:" + "o" * 27 + "é",
        "console:",
        "console:two words",
        "email:ann@example.org",
        "123456789",
    ],
)
def test_staff_add_refuses_an_account_of_the_wrong_shape(env: dict[str, str], identity: str) -> None:
    done = gigunion(env, "staff", "add", identity, "--role", "admin", "--name", "Ann")
    assert done.returncode == 2, done.stderr
    told = " ".join(done.stderr.split())
    assert "telegram:<digits>" in told and "wechat:<openid>" in told and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["", "   "])
def test_staff_add_refuses_an_empty_name(env: dict[str, str], name: str) -> None:
    done = gigunion(env, "staff", "add", "telegram:123456789", "--role", "admin", "--name", name)
    assert done.returncode == 2 and "--name" in done.stderr and "Traceback" not in done.stderr
    listed = gigunion(env, "staff", "list")
    assert "telegram:123456789" not in listed.stdout


def test_staff_add_takes_each_channel_s_own_shape(env: dict[str, str]) -> None:
    for identity in ("telegram:123456789", f"wechat:{OPENID}", "console:ann"):
        done = gigunion(env, "staff", "add", identity, "--role", "claims", "--name", " 李老师 ")
        assert done.returncode == 0, done.stderr
    listed = gigunion(env, "staff", "list").stdout
    assert f"wechat:{OPENID}\tclaims\t李老师\n" in listed and "telegram:123456789\tclaims\t李老师" in listed


def test_wechat_menu_push_help_shows_the_config_table_and_every_option_is_explained(env: dict[str, str]) -> None:
    done = gigunion(env, "wechat", "menu", "push", "--help")
    assert done.returncode == 0
    assert "[wechat.menu]" in done.stdout
    import typer.main

    import bot.cli

    group = typer.main.get_command(bot.cli.app)
    push = group.commands["wechat"].commands["menu"].commands["push"]  # type: ignore[attr-defined]
    assert all(p.help for p in push.params), [p.name for p in push.params if not p.help]


def test_wechat_menu_push_speaks_only_the_bot_s_languages(env: dict[str, str]) -> None:
    assert {lang.value for lang in Language} == set(Locale().languages)
    for lang in ("fr", "zh", "EN-us", ""):
        done = gigunion(env, "wechat", "menu", "push", "--dry-run", "--lang", lang)
        assert done.returncode == 2 and "--lang" in done.stderr, (lang, done.stderr)
    english = gigunion(env, "wechat", "menu", "push", "--dry-run", "--lang", "en")
    chinese = gigunion(env, "wechat", "menu", "push", "--dry-run", "--lang", "zh_CN")
    assert english.returncode == 0 and chinese.returncode == 0, english.stderr + chinese.stderr
    labels = lambda out: json.dumps(json.loads(out), ensure_ascii=False)  # noqa: E731
    assert "Join" in labels(english.stdout) and "加入工会" in labels(chinese.stdout)
