"""Every sentence exists in every language, and every key the code uses exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.locale import LOCALES_DIR, Locale

ROOT = Path(__file__).resolve().parents[1]


def test_every_key_is_in_every_locale() -> None:
    locale = Locale()
    assert set(locale.languages) >= {"zh_CN", "en"}
    keys = {lang: locale.keys(lang) for lang in locale.languages}
    for lang, own in keys.items():
        for other, theirs in keys.items():
            assert not own - theirs, f"in {lang} but not in {other}: {sorted(own - theirs)}"


def test_the_same_files_in_every_locale() -> None:
    files = {p.name: {f.name for f in p.glob("*.toml")} for p in LOCALES_DIR.iterdir() if p.is_dir()}
    assert len(set(map(frozenset, files.values()))) == 1, files


def _keys_used_in_code() -> set[str]:
    pattern = re.compile(r"""(?:\bT|\.say|\.retry|\.text)\(\s*(?:[a-z_.]+,\s*)?f?["']([a-z_]+\.[a-z_{}\[\]0-9]+)["']""")
    used = set()
    for path in (ROOT / "bot").rglob("*.py"):
        used |= set(pattern.findall(path.read_text("utf-8")))
    return used


def test_every_key_the_code_uses_exists() -> None:
    locale = Locale()
    keys = locale.keys("zh_CN")
    used = _keys_used_in_code()
    assert len(used) > 40
    for key in used:
        if "{" in key:  # an f-string key: at least one key has that prefix
            prefix = key.split("{")[0]
            assert any(k.startswith(prefix) for k in keys), key
        else:
            assert key in keys, key


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_templates_compile(lang: str) -> None:
    locale = Locale()
    for key in locale.keys(lang):
        locale._envs[lang].get_template(key)  # raises on a syntax error
