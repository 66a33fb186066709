"""Small parts on their own: reading input, keys, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.services.crypto import Keyring, normalize_card_code
from bot.validation import mainland_mobile, name_from_profile, person_name, short_answer, source_code


@pytest.mark.parametrize(
    "raw,phone",
    [
        ("13800138000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("0086-138-0013-8000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),  # full-width digits from a Chinese keyboard
        ("12800138000", None),
        ("1380013800", None),
        ("+1 415 555 0100", None),
        ("", None),
        ("😀", None),
    ],
)
def test_mainland_mobile(raw: str, phone: str | None) -> None:
    assert mainland_mobile(raw) == phone


@pytest.mark.parametrize(
    "raw,name",
    [
        ("张三", "张三"),
        ("  李  四 ", "李 四"),
        ("阿卜杜·热合曼", "阿卜杜·热合曼"),
        ("Mary-Jane O'Neil", "Mary-Jane O'Neil"),
        ("张三3", None),
        ("😀", None),
        ("", None),
        ("x" * 31, None),
        ("·", None),
    ],
)
def test_person_name(raw: str, name: str | None) -> None:
    assert person_name(raw) == name


def test_names_offered_from_a_chat_profile_lose_their_decoration() -> None:
    assert name_from_profile("小王🛵") == "小王" and name_from_profile("Li Lei ✨") == "Li Lei"
    assert name_from_profile("🛵🛵") is None and name_from_profile("rider2024") is None
    assert name_from_profile(None) is None


def test_short_answer_and_source() -> None:
    assert short_answer(" 达达 快送 ") == "达达 快送"
    assert short_answer("🛵🛵") is None and short_answer("!!!") is None and short_answer("x" * 41) is None
    assert source_code("station-7") == "station-7" and source_code("a b") is None and source_code("") is None


def test_keyring() -> None:
    ring = Keyring("k1")
    token = ring.encrypt("13800138000")
    assert "13800138000" not in token and ring.decrypt(token) == "13800138000"
    with pytest.raises(ValueError):
        Keyring("k2").decrypt(token)
    code = ring.card_code("HB2026000001")
    assert len(code) == 8 and code == ring.card_code("HB2026000001") != Keyring("k2").card_code("HB2026000001")
    assert normalize_card_code(f" {code[:4].lower()}-{code[4:]} ") == code
    assert ring.lookup_hash("13800138000") != Keyring("k2").lookup_hash("13800138000")


def test_settings_from_env_and_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('secret_key = "file"\nsession_timeout_minutes = 5\n[telegram]\ntoken = "from-file"\n')
    s = load_settings(config, environ={"GIGUNION_SECRET_KEY": "env", "GIGUNION_WECHAT_APPID": "wx1"})
    assert s.secret_key == "env" and s.session_timeout_minutes == 5
    assert s.telegram_token == "from-file" and s.wechat_appid == "wx1"
    default = load_settings(environ={})
    # One data folder, the platform's, whatever folder the command runs in (see tests/test_data_folder.py).
    assert default.database_url.endswith("/gigunion/gigunion.db") and default.sqlite_path().is_absolute()
    assert default.profile.member_prefix == "HB" and "蜂鸟配送" in default.profile.platforms
    assert default.profile.timezone == "Asia/Shanghai" and default.profile.default_language == "zh_CN"


def test_typed_options_by_number_label_word_and_skip_words() -> None:
    from bot.engine.dispatcher import _typed_choice

    choices = [["📷 不配图片", "skip"], ["返回上一步", "back"]]
    assert _typed_choice("２", choices) == "back"
    assert _typed_choice("不配图片", choices) == "skip"
    for word in ("跳过", "不用", "Skip", "没有"):
        assert _typed_choice(word, choices) == "skip", word
    assert _typed_choice("跳过", [["返回上一步", "back"]]) is None  # only where a step can be skipped
    assert _typed_choice("3", choices) is None


def test_the_console_shows_a_later_message_s_button_as_the_words_to_type() -> None:
    from bot.engine.dispatcher import says
    from bot.engine.messages import OutButton, Outgoing
    from bot.handlers.console import format_text

    shown = format_text(Outgoing("通知", buttons=(OutButton("返回", "a1|back"), says("我要报名", "报名 12"))))
    assert shown.splitlines()[1:] == ["[1] 返回", "[报名 12] 我要报名"]
