"""Reading what people type: phone numbers, names, short free-text answers."""

from __future__ import annotations

import re
import unicodedata

_MOBILE = re.compile(r"1[3-9]\d{9}")
_NAME_PART = re.compile(r"[^\W\d_]+", re.UNICODE)
_SOURCE = re.compile(r"[A-Za-z0-9_\-]{1,48}")


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
