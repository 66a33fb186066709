"""Images users send on WeChat, over real HTTP: the message carries a MediaId, fetched from the fake
WeChat API's temporary media (media/get) before the turn; an unknown or expired id (40007), a bad or
oversize file each get a polite answer and leave nothing behind."""

from __future__ import annotations

import pytest

from tests.fakes.wechat_push import message_xml, text_xml, wechat_bot, wechat_settings
from tests.test_media import (
    FAKE_JPEG,
    files_under,
    jpeg_with_gps,
    media_rows,
    png,
    session_step,
    t,
    truncated_png,
    with_media_flows,
)

RIDER = "oRider_media_0000000000000001"


@pytest.fixture
def settings(make_settings, fake):  # type: ignore[no-untyped-def]
    return wechat_settings(make_settings, fake.base, media_max_bytes=100_000)


def image_xml(media_id: str) -> str:
    fields = (
        f"<PicUrl><![CDATA[http://mmbiz.example/{media_id}.jpg]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
    )
    return message_xml(RIDER, "image", fields)


async def test_images_are_fetched_from_temporary_media_and_kept_once(settings, fake) -> None:  # type: ignore[no-untyped-def]
    jpeg = jpeg_with_gps()
    fake.put_media("m-photo", jpeg)
    fake.put_media("m-photo-again", jpeg)
    fake.put_media("m-png", png(), "image/png")
    async with wechat_bot(settings) as (app, wx):
        with_media_flows(app)
        assert t("media.send_file") in (await wx.push(text_xml(RIDER, "传文件"))).content
        for media_id in ("m-photo", "m-png"):
            assert t("media.received") in (await wx.push(image_xml(media_id))).content
        fake.expire_token()  # the access token is refreshed once and the download tried again
        assert t("media.received") in (await wx.push(image_xml("m-photo-again"))).content

        gets = fake.to("media/get")
        assert [g.params["media_id"] for g in gets] == ["m-photo", "m-png", "m-photo-again", "m-photo-again"]
        rows = await media_rows(app)
        assert len(rows) == 3 and {r.owner_id for r in rows} == {f"wechat:{RIDER}"}
        assert sorted(p.read_bytes() for p in files_under(app.settings.media_path())) == sorted([jpeg, png()])


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (None, "media.refused_expired"),  # WeChat keeps temporary media 3 days, then answers 40007
        (FAKE_JPEG, "media.refused_wrong_type"),
        (png(300, 300), "media.refused_too_big"),
        (truncated_png(), "media.refused_truncated"),
    ],
)
async def test_bad_images_get_a_polite_answer_and_leave_nothing(settings, fake, data, said) -> None:  # type: ignore[no-untyped-def]
    if data is not None:
        fake.put_media("m-bad", data)
    async with wechat_bot(settings) as (app, wx):
        with_media_flows(app)
        await wx.push(text_xml(RIDER, "传文件"))

        out = (await wx.push(image_xml("m-bad"))).content

        assert t(said, limit="98 KB") in out and t("media.send_file") in out
        assert await session_step(app, f"wechat:{RIDER}") == "file"
        assert await media_rows(app) == [] and files_under(app.settings.media_path()) == []
        fake.put_media("m-good", png())
        assert t("media.received") in (await wx.push(image_xml("m-good"))).content
