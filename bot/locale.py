"""Every user-facing sentence, from `locales/<lang>/<group>.toml`: each value is a jinja2 template.

A key is "<group>.<name>", e.g. "join.ask_phone" is `ask_phone` in `locales/zh_CN/join.toml`.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from bot.engine.messages import T

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
# Words that depend on the channel, given to every template with `channel` itself: `{{ tap }}` is
# "点下面的按钮" where there are buttons and "回复选项前面的数字" on WeChat. Each is `engine.<word>`,
# overridden for a channel by `engine.<word>_<channel>`.
CHANNEL_WORDS = ("tap", "pick")


def normalize_lang(hint: str | None, available: tuple[str, ...]) -> str | None:
    """Map a platform's language code ("zh-hans", "en-US", "zh_CN") onto a locale we have."""
    if not hint:
        return None
    h = hint.replace("-", "_").lower()
    for lang in available:
        if h == lang.lower() or h.split("_")[0] == lang.lower().split("_")[0]:
            return lang
    return None


@cache
def _catalog(directory: Path, lang: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for path in sorted((directory / lang).glob("*.toml")):
        for name, text in tomllib.loads(path.read_text("utf-8")).items():
            entries[f"{path.stem}.{name}"] = text
    return entries


class Locale:
    def __init__(self, directory: Path = LOCALES_DIR) -> None:
        self.directory = directory
        self.languages = tuple(sorted(p.name for p in directory.iterdir() if p.is_dir()))
        self._envs = {lang: self._env(lang) for lang in self.languages}
        self._fixed: dict[tuple[str, str, str], str] = {}
        self._words: dict[tuple[str, str], dict[str, str]] = {}
        # Compiled once: jinja's own cache look-up (a lock and a loader check) cost as much as many renders.
        self._templates: dict[tuple[str, str], jinja2.Template] = {}

    def _env(self, lang: str) -> jinja2.Environment:
        catalog = _catalog(self.directory, lang)

        def load(name: str) -> str | None:
            return catalog.get(name)

        env = jinja2.Environment(
            loader=jinja2.FunctionLoader(load),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.globals["t"] = lambda key, **ctx: self.render(lang, T(key, **ctx))
        return env

    def keys(self, lang: str) -> set[str]:
        return set(_catalog(self.directory, lang))

    def render(self, lang: str, text: T | str, channel: str = "") -> str:
        if isinstance(text, str):
            return text
        if not text.context:  # most labels and prompts: the same words every time
            done = self._fixed.get((lang, text.key, channel))
            if done is None:
                done = self._fixed[(lang, text.key, channel)] = self._render(lang, text, channel)
            return done
        return self._render(lang, text, channel)

    def _render(self, lang: str, text: T, channel: str = "") -> str:
        words = self._words.get((lang, channel)) or self._channel_words(lang, channel)
        template = self._templates.get((lang, text.key))
        if template is None:
            template = self._templates[(lang, text.key)] = self._envs[lang].get_template(text.key)
        return template.render(**words, **text.context).strip()

    def _channel_words(self, lang: str, channel: str) -> dict[str, str]:
        catalog = _catalog(self.directory, lang)
        words = {w: catalog.get(f"engine.{w}_{channel}", catalog.get(f"engine.{w}", "")) for w in CHANNEL_WORDS}
        self._words[(lang, channel)] = words = {"channel": channel, **words}
        return words

    def text(self, lang: str, key: str, **context: Any) -> str:
        return self.render(lang, T(key, **context))
