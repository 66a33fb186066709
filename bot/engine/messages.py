"""What crosses the line between a channel adapter and the engine.

Adapters build an `Incoming` from a platform update and render `Outgoing` messages by what their
platform can show. Flows never see either platform's objects; they answer with a `Reply` made of
locale keys (`T`), which the dispatcher renders in the user's language.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    TEXT = "text"
    BUTTON = "button"  # a tapped button: `payload` carries the stamped button payload
    COMMAND = "command"  # "/menu" and friends: `text` is the command word, `payload` its argument
    CONTACT = "contact"
    PHOTO = "photo"
    DOCUMENT = "document"  # a file sent as a file (a PDF, an image sent uncompressed…)
    LOCATION = "location"
    OTHER = "other"  # anything the channel could not map (a sticker, a voice note without text…)


class Request(StrEnum):
    """A phone action the user is asked for; channels without it fall back to typed input."""

    CONTACT = "contact"
    LOCATION = "location"
    PHOTO = "photo"


# The payload prefix of a button that says words for the member (see `bot.engine.dispatcher.says`).
SAYS = "say|"


@dataclass(frozen=True)
class Contact:
    phone: str
    # The platform user the contact belongs to, when the platform says (Telegram does): a shared
    # contact is only accepted as the sender's own number.
    owner_id: str | None = None
    name: str | None = None


class Refusal(StrEnum):
    """Why a file sent was not kept; each has its polite answer, `media.refused_<reason>`."""

    WRONG_TYPE = "wrong_type"
    TOO_BIG = "too_big"
    TRUNCATED = "truncated"
    EXPIRED = "expired"
    DOWNLOAD_FAILED = "download_failed"


@dataclass(frozen=True)
class StoredMedia:
    """A file kept by the media store (`bot.services.media`), by its row in the `media` table."""

    id: str
    mime: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Media:
    """A photo or document by reference (Telegram file_id, WeChat MediaId, a console path). The file is
    fetched and checked before the turn, which then sees either `stored` or `refused`."""

    file_id: str
    url: str | None = None
    mime_type: str | None = None  # as the platform declared it: never trusted
    stored: StoredMedia | None = None
    refused: Refusal | None = None


@dataclass(frozen=True)
class Incoming:
    channel: str  # "console", "telegram", "wechat"
    user_id: str  # the platform's id for the sender
    kind: Kind
    text: str = ""
    payload: str = ""
    contact: Contact | None = None
    media: Media | None = None
    location: tuple[float, float] | None = None
    dedupe_key: str | None = None  # Telegram update_id, WeChat MsgId…; None where the channel has none
    language_hint: str | None = None  # e.g. Telegram's language_code
    display_name: str | None = None  # the name the platform profile shows, offered at the name step

    @property
    def user_key(self) -> str:
        return f"{self.channel}:{self.user_id}"


@dataclass(frozen=True)
class T:
    """A locale key with its context: rendered in the user's language by the dispatcher."""

    key: str
    context: dict[str, Any] = field(default_factory=dict)

    def __init__(self, key: str, **context: Any) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "context", context)


Label = T | str  # a literal str is data (a platform's name, a member's own name), not a sentence


@dataclass(frozen=True)
class Button:
    label: Label
    payload: str


@dataclass
class Reply:
    """What one flow step answers: messages (locale keys), then choices and phone requests."""

    texts: list[T] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    image: bytes | None = None
    document: tuple[str, bytes] | None = None  # (file name, bytes): a calendar file, say


@dataclass(frozen=True)
class OutButton:
    label: str
    payload: str  # stamped: "<stamp>|<payload>", what a channel sends back in Incoming.payload

    @property
    def words(self) -> str | None:
        """What a button of a message sent later stands for (`dispatcher.says`): the words pressing it
        types. A channel without buttons shows these, since a number would pick from whatever the
        conversation shows by then. None for a button of a turn's own answer."""
        return self.payload[len(SAYS) :] if self.payload.startswith(SAYS) else None


@dataclass(frozen=True)
class Outgoing:
    """One rendered bot message, ready for a channel to show by its abilities."""

    text: str
    buttons: tuple[OutButton, ...] = ()
    requests: tuple[Request, ...] = ()
    image: bytes | None = None
    # Labels for the phone-request keyboard, rendered in the user's language.
    request_labels: dict[str, str] = field(default_factory=dict)
    lang: str = ""  # the language it is written in, for what a channel adds around it
    document: tuple[str, bytes] | None = None  # (file name, bytes), sent as a file where the channel can
    # An answer in an anonymous conversation (a receipt code, a complaint's text): delivered now or not
    # at all, never queued in the outbox under the person it answers. Never written out (to_json).
    private: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "buttons": [{"label": b.label, "payload": b.payload} for b in self.buttons],
            "requests": [str(r) for r in self.requests],
            "image": base64.b64encode(self.image).decode() if self.image else None,
            "request_labels": self.request_labels,
            "lang": self.lang,
            # Kept for redelivery like the rest, so a repeated update gets the same file again.
            "document": {"name": self.document[0], "base64": base64.b64encode(self.document[1]).decode()}
            if self.document
            else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Outgoing:
        return cls(
            text=d["text"],
            buttons=tuple(OutButton(b["label"], b["payload"]) for b in d["buttons"]),
            requests=tuple(Request(r) for r in d["requests"]),
            image=base64.b64decode(d["image"]) if d.get("image") else None,
            request_labels=d.get("request_labels", {}),
            lang=d.get("lang", ""),
            document=(d["document"]["name"], base64.b64decode(d["document"]["base64"])) if d.get("document") else None,
        )
