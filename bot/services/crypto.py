"""Keys derived from the deployment's secret: field encryption, lookup hashes and card codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, date, datetime, time

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or typed from a screen is unambiguous.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_FIXUPS = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
# What the card's QR code holds before the code, so a phone's scanner shows what it has read.
CARD_QR_PREFIX = "GIGUNION-CARD:"


def _derive(secret: str, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret.encode())


class Keyring:
    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, "gigunion field encryption v1")))
        self._lookup = _derive(secret, "gigunion lookup hash v1")
        self._card = _derive(secret, "gigunion card code v1")
        self._fingerprint = _derive(secret, "gigunion key fingerprint v1")

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def encrypt_dated(self, plain: str, day: date) -> str:
        """As `encrypt`, but the token's clear timestamp (Fernet keeps one, to the second) says only the
        day: an anonymous complaint's text must not tell when it was written."""
        stamp = int(datetime.combine(day, time(), UTC).timestamp())
        return self._fernet.encrypt_at_time(plain.encode(), stamp).decode()

    def reencrypt(self, token: str, old: Keyring) -> str:
        """`token`, written under `old`, written again under this key with its own time kept (a rotation
        must not stamp every value with one moment, nor a dated value with a second)."""
        try:
            plain = old._fernet.decrypt(token.encode())
            stamp = old._fernet.extract_timestamp(token.encode())  # checked by the key, as decrypt is
        except InvalidToken as e:
            raise ValueError("encrypted field does not open with this secret key") from e
        return self._fernet.encrypt_at_time(plain, stamp).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as e:
            raise ValueError("encrypted field does not open with this secret key") from e

    def lookup_hash(self, value: str) -> str:
        """A keyed hash to find a record by a personal value without storing the value in clear."""
        return hmac.new(self._lookup, value.encode(), hashlib.sha256).hexdigest()

    def fingerprint(self) -> str:
        """Names this key in the database without revealing it: the same key always gives the same
        sixteen hex digits, another key different ones, and nothing about the key follows from them."""
        return hmac.new(self._fingerprint, b"gigunion key fingerprint", hashlib.sha256).hexdigest()[:16]

    def card_code(self, member_number: str) -> str:
        """Eight characters, shown as AB12-CD34, that only a holder of the secret key can make."""
        digest = hmac.new(self._card, member_number.encode(), hashlib.sha256).digest()
        n = int.from_bytes(digest[:5], "big")
        chars = [_CODE_ALPHABET[(n >> (5 * i)) & 31] for i in range(8)]
        return "".join(chars)


def normalize_card_code(typed: str) -> str:
    """What staff type or scan, read as a stored code: the QR code's prefix, case, dashes, spaces and
    look-alike letters forgiven."""
    typed = typed.strip().upper().removeprefix(CARD_QR_PREFIX)
    return "".join(ch for ch in typed if ch.isalnum()).translate(_CODE_FIXUPS)


def format_card_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"
