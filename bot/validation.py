"""Reading what people type: phone numbers, names, short free-text answers, dates."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta

_MOBILE = re.compile(r"1[3-9]\d{9}")
_NAME_PART = re.compile(r"[^\W\d_]+", re.UNICODE)
_SOURCE = re.compile(r"[A-Za-z0-9_\-]{1,48}")
_YMD = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?")
_MD = re.compile(r"(\d{1,2})[-/.月](\d{1,2})[日号]?")
_DAYS_AGO = {"今天": 0, "今日": 0, "today": 0, "昨天": 1, "昨日": 1, "yesterday": 1, "前天": 2}


def mainland_mobile(raw: str) -> str | None:
    """'+86 138-0013-8000', '8613800138000', '138 0013 8000' -> '13800138000'; None if not one."""
    text = unicodedata.normalize("NFKC", raw or "")
    digits = re.sub(r"[\s\-()（）.]", "", text)
    if digits.startswith("+"):
        digits = digits[1:]
        if not digits.startswith("86"):
            return None
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if _MOBILE.fullmatch(digits) else None


def person_name(raw: str) -> str | None:
    """A name as people write it: letters of any script, with spaces, '·' or '-' between parts.
    No digits, no emoji, 1 to 30 characters."""
    name = " ".join(unicodedata.normalize("NFKC", raw or "").split())
    if not 1 <= len(name) <= 30:
        return None
    parts = re.split(r"[ ·•\-']", name)
    if not all(_NAME_PART.fullmatch(p) for p in parts if p) or not any(parts):
        return None
    return name


def name_from_profile(raw: str | None) -> str | None:
    """A name worth offering from a chat profile: "小王🛵" and "Li Lei ✨" are people's names with
    decoration; what is left once the symbols go must still read as a name."""
    kept = "".join(ch for ch in raw or "" if unicodedata.category(ch) not in ("So", "Sk", "Cs", "Mn", "Cf"))
    return person_name(kept)


def short_answer(raw: str, limit: int = 40) -> str | None:
    """A short free-text answer (a platform's name): printable, with at least one letter or digit."""
    text = " ".join(unicodedata.normalize("NFKC", raw or "").split())
    if not 1 <= len(text) <= limit:
        return None
    if not any(ch.isalnum() for ch in text):
        return None
    if any(unicodedata.category(ch) in ("So", "Cs", "Co", "Cn", "Cc") for ch in text):
        return None
    return text


def source_code(raw: str) -> str | None:
    """The source of a QR code or deep link ("station-12", "smile-market-0601")."""
    return raw if raw and _SOURCE.fullmatch(raw) else None


def calendar_date(raw: str, today: date, *, past: bool = False) -> date | None:
    """'2026-11-28', '2026年11月28日', '11月28日', '11-28', '11/28', '昨天' -> that day; None if not one.
    A day without a year is in this year, or with `past` the latest such day not after `today`
    (on 2 January, "12-30" means three days ago)."""
    text = "".join(unicodedata.normalize("NFKC", raw or "").split()).casefold()
    if text in _DAYS_AGO:
        return today - timedelta(days=_DAYS_AGO[text])
    try:
        if m := _YMD.fullmatch(text):
            year, month, day = map(int, m.groups())
            return date(year, month, day) if 1900 <= year <= 2100 else None
        if m := _MD.fullmatch(text):
            month, day = map(int, m.groups())
            found = date(today.year, month, day)
            return found.replace(year=today.year - 1) if past and found > today else found
    except ValueError:  # 2-30, 13-01, or 2-29 in a year without it
        return None
    return None
