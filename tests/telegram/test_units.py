"""Telegram update JSON -> Incoming, and Outgoing -> keyboards: the adapter's pure parts."""

from __future__ import annotations

from telegram import Update

from bot.engine.messages import Contact, Kind, Media, OutButton, Outgoing, Request
from bot.handlers.telegram import file_url
from bot.handlers.telegram_incoming import to_incoming
from bot.handlers.telegram_render import chunks, inline_keyboard, request_keyboard
from tests.fakes.telegram_api import FakeTelegram, user_json

fake = FakeTelegram()
USER = user_json(321, first_name="Li", last_name="Wei", lang="en-US")


def incoming(update: dict):  # type: ignore[no-untyped-def]
    return to_incoming(Update.de_json(update, None))


def test_text_carries_identity_language_name_and_dedupe_key() -> None:
    update = fake.text(USER, "你好")
    inc = incoming(update)
    assert (inc.channel, inc.user_id, inc.kind, inc.text) == ("telegram", "321", Kind.TEXT, "你好")
    assert inc.dedupe_key == str(update["update_id"])
    assert (inc.language_hint, inc.display_name) == ("en-US", "Li Wei")


def test_start_with_deep_link_payload_is_a_command() -> None:
    inc = incoming(fake.text(USER, "/start join-station-12"))
    assert (inc.kind, inc.text, inc.payload) == (Kind.COMMAND, "/start", "join-station-12")
    assert incoming(fake.text(USER, "/menu@gigunion_test_bot")).text == "/menu@gigunion_test_bot"


def test_button_press_carries_the_callback_data_verbatim() -> None:
    message = {
        "message_id": 5,
        "date": 1,
        "chat": {"id": 321, "type": "private"},
        "text": "?",
        "reply_markup": {"inline_keyboard": [[{"text": "同意", "callback_data": "0b|agree"}]]},
    }
    inc = incoming(fake.press(USER, "同意", message=message))
    assert (inc.kind, inc.payload) == (Kind.BUTTON, "0b|agree")


def test_contact_own_and_someone_elses() -> None:
    own = incoming(fake.contact(USER, "+8613800138000", owner_id=321, first_name="李伟"))
    assert own.contact == Contact("+8613800138000", "321", "李伟")
    other = incoming(fake.contact(USER, "13900139000", owner_id=None))
    assert other.kind is Kind.CONTACT and other.contact.owner_id is None


def test_photo_takes_the_largest_size_and_the_caption() -> None:
    inc = incoming(fake.photo(USER, caption="发票"))
    assert (inc.kind, inc.media, inc.text) == (Kind.PHOTO, Media("photo-1280"), "发票")


def test_documents_locations_and_stickers() -> None:
    image_doc = incoming(fake.document(USER, mime="image/jpeg"))
    assert image_doc.kind is Kind.PHOTO and image_doc.media.mime_type == "image/jpeg"
    pdf = incoming(fake.document(USER))
    assert pdf.kind is Kind.DOCUMENT and pdf.media.file_id == "doc-1"
    assert incoming(fake.location(USER, 30.25, 120.17)).location == (30.25, 120.17)
    sticker = fake.message(USER, sticker={"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1,
                                          "is_animated": False, "is_video": False, "type": "regular"})  # fmt: skip
    assert incoming(sticker).kind is Kind.OTHER


def test_updates_with_nothing_to_answer() -> None:
    edited = fake.text(USER, "改了")
    edited["edited_message"] = edited.pop("message")
    assert incoming(edited) is None
    bot_user = {"id": 9, "is_bot": True, "first_name": "other bot"}
    assert incoming(fake.text(bot_user, "hi")) is None


def test_inline_keyboard_layout_and_payload_limit() -> None:
    two = inline_keyboard([OutButton("同意", "01|agree"), OutButton("不同意", "01|decline")])
    assert [[b.text for b in row] for row in two.inline_keyboard] == [["同意"], ["不同意"]]
    many = inline_keyboard([OutButton(f"平台{i}", f"01|p{i}") for i in range(5)])
    assert [len(row) for row in many.inline_keyboard] == [2, 2, 1]
    assert inline_keyboard([OutButton("x", "01|" + "y" * 70)]) is None


def test_request_keyboard_for_contact_and_location_only() -> None:
    out = Outgoing(
        "?",
        requests=(Request.CONTACT, Request.LOCATION, Request.PHOTO),
        request_labels={"contact": "📱 分享", "location": "📍 位置", "photo": "📷"},
    )
    rows = request_keyboard(out).keyboard
    assert [(b.text, b.request_contact, b.request_location) for [b] in rows] == [
        ("📱 分享", True, None),
        ("📍 位置", None, True),
    ]
    assert request_keyboard(Outgoing("?", requests=(Request.PHOTO,))) is None


def test_long_text_is_split_and_file_url_derived() -> None:
    assert [len(c) for c in chunks("字" * 5000)] == [4096, 904]
    assert file_url("https://api.telegram.org/bot") == "https://api.telegram.org/file/bot"
    assert file_url("http://127.0.0.1:8081/bot") == "http://127.0.0.1:8081/file/bot"
