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


# -- claim payouts -------------------------------------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # GB 11643: the check character for each remainder mod 11
_ID_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")
_EMAIL = re.compile(r"[a-z0-9._%+\-]{1,64}@[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63})*\.[a-z]{2,24}")


def _compact(raw: str) -> str:
    """Full-width digits made plain and the spaces and dashes people group numbers with taken out."""
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", raw or ""))


def cn_id_number(raw: str) -> str | None:
    """An 18-character resident ID number (GB 11643): 17 digits with a real birth date at 7–14, and
    the check character that the weighted sum gives ("x" read as "X"); None otherwise."""
    text = _compact(raw).upper()
    if not _ID_SHAPE.fullmatch(text):
        return None
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return None
    if born.year < 1900:
        return None
    total = sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    return text if _ID_CHECK[total % 11] == text[17] else None


def bank_account(raw: str) -> str | None:
    """A bank card or account number: 12 to 19 digits, written with or without spaces. No Luhn check:
    passbook and some older accounts do not carry one, and a bank refuses a wrong number anyway."""
    text = _compact(raw)
    return text if text.isdigit() and text.isascii() and 12 <= len(text) <= 19 else None


def alipay_account(raw: str) -> str | None:
    """An Alipay account: the mainland mobile number or the e-mail address it was opened with."""
    phone = mainland_mobile(raw)
    if phone is not None:
        return phone
    text = unicodedata.normalize("NFKC", raw or "").strip().casefold()
    return text if _EMAIL.fullmatch(text) else None


# Amounts in yuan, as riders type them: "1280", "1280.50", "１２８０", "1280元", "¥1280".
_AMOUNT = re.compile(r"(\d{1,9})(?:\.(\d{1,2}))?")
_ANY_NUMBER = re.compile(r"[-+]?\d+(?:\.(\d+))?")
_CURRENCY = re.compile(r"^[¥$]|(?:元|块钱|块|rmb|cny|yuan)$", re.IGNORECASE)


def _amount_text(raw: str) -> str:
    # NFKC turns full-width digits, the full-width point and ￥ into their ASCII forms.
    folded = unicodedata.normalize("NFKC", raw or "").strip().replace(" ", "")
    return _CURRENCY.sub("", folded).strip()


def parse_yuan(raw: str) -> int | None:
    """A typed amount in yuan as fen: "123", "123.4", "123.45", "１２３", "123元", "¥123" -> fen. None for
    zero, negatives, more than two decimals, and anything else."""
    match = _AMOUNT.fullmatch(_amount_text(raw))
    if match is None:
        return None
    fen = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    return fen or None


def yuan_refusal(raw: str) -> str:
    """Why `parse_yuan` refused `raw`: "negative", "decimals", "zero" or "not_number"."""
    text = _amount_text(raw)
    match = _ANY_NUMBER.fullmatch(text)
    if match is None:
        return "not_number"
    if text.startswith("-"):
        return "negative"
    if match.group(1) and len(match.group(1)) > 2:
        return "decimals"
    return "zero" if float(text) == 0 else "not_number"  # (too large, or a sign: not an amount)
