"""The WeChat callback over real HTTP (uvicorn on 127.0.0.1), in safe mode unless a test says so, with
a fake WeChat API for customer-service messages."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from bot.engine.messages import Incoming, Kind, Outgoing
from storage.schema import outbox, processed_updates, sessions
from tests.fakes.wechat_push import (
    TOKEN,
    event_xml,
    message_xml,
    plain_signature,
    text_xml,
    wechat_bot,
)

RIDER = "oRider_0000000000000000000001"
NUMBER = re.compile(r"HB\d{4}\d{6}")


class Counting:
    """A dispatcher that counts the turns it is asked to run, and can hold them until released."""

    def __init__(self, inner, held: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.calls: list[Incoming] = []
        self.release = asyncio.Event()
        if not held:
            self.release.set()

    async def handle(self, incoming: Incoming) -> list[Outgoing]:
        self.calls.append(incoming)
        await self.release.wait()
        return await self.inner.handle(incoming)


async def count_rows(app, table) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return (await tx.conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_get_check_echoes_only_when_signed(settings) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings) as (_, wx):
        good = {"signature": plain_signature(TOKEN, "1700000000", "42"), "timestamp": "1700000000", "nonce": "42"}
        ok = await wx.client.get("/wechat", params={**good, "echostr": "echo-123"})
        assert ok.status_code == 200 and ok.text == "echo-123"
        bad = await wx.client.get("/wechat", params={**good, "signature": "f" * 40, "echostr": "echo-123"})
        assert bad.status_code == 403 and "echo-123" not in bad.text


async def test_whole_join_in_safe_mode_ends_with_a_member_and_a_card(settings, fake) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings) as (app, wx):
        welcome = await wx.push(event_xml(RIDER, "subscribe", "qrscene_station9"))
        assert welcome.to_user == RIDER
        assert "隐私说明" in welcome.content and "回复数字" in welcome.content
        assert "1 同意" in welcome.content and "2 不同意" in welcome.content

        phone = await wx.push(text_xml(RIDER, "1"))
        assert "11 位手机号" in phone.content and "直接回复" in phone.content

        name = await wx.push(text_xml(RIDER, "13800138000"))
        assert "姓名" in name.content

        platform = await wx.push(text_xml(RIDER, "张三"))
        assert "平台" in platform.content and "\n1 " in platform.content

        work = await wx.push(text_xml(RIDER, "1"))
        assert "工作" in work.content and "\n1 " in work.content

        summary = await wx.push(text_xml(RIDER, "1"))
        assert "138****8000" in summary.content and "13800138000" not in summary.content
        assert "1 ✅ 确认入会" in summary.content

        card = await wx.push(text_xml(RIDER, "1"))
        number = NUMBER.search(card.content)
        assert "入会成功" in card.content and number and "张三" in card.content

        # The card picture follows as an uploaded image in a customer-service message.
        sent = await fake.wait_for("message/custom/send")
        uploads = fake.to("media/upload")
        assert len(uploads) == 1 and b"\x89PNG" in uploads[0].raw
        assert sent[0].json["touser"] == RIDER and sent[0].json["msgtype"] == "image"
        assert sent[0].json["image"]["media_id"].startswith("media-")

        async with app.db.transaction() as tx:
            member = await tx.members.by_user_key(f"wechat:{RIDER}")
        assert member is not None and member.member_number == number.group(0)
        assert member.source == "station9"


async def test_scan_by_a_follower_starts_joining_with_that_source(settings) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings, wrap=Counting) as (app, wx):
        answer = await wx.push(event_xml(RIDER, "SCAN", "smile-market-0601"))
        assert "隐私说明" in answer.content
        async with app.db.transaction() as tx:
            session = await tx.sessions.get(f"wechat:{RIDER}")
        assert session.flow == "join" and session.data["source"] == "smile-market-0601"


async def test_a_retried_message_gets_the_same_answer_with_one_effect(settings) -> None:  # type: ignore[no-untyped-def]
    counting: list[Counting] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        counting.append(Counting(inner))
        return counting[-1]

    subscribe = event_xml(RIDER, "subscribe", create_time=1_760_000_000)
    agree = text_xml(RIDER, "1", msg_id=6_000_000_000_000_000_042)
    async with wechat_bot(settings, wrap=wrap) as (app, wx):
        first = await wx.push(subscribe)
        again = await wx.push(subscribe)  # re-encrypted with a new nonce, as WeChat does
        assert first.content == again.content and "隐私说明" in first.content
        agreed = await wx.push(agree)
        agreed_again = await wx.push(agree)
        assert agreed.content == agreed_again.content and "手机号" in agreed.content
        assert len(counting[0].calls) == 2
        async with app.db.transaction() as tx:
            version = (await tx.sessions.get(f"wechat:{RIDER}")).version

    # After a restart the in-memory answers are gone; the engine's marker still gives the same answer.
    async with wechat_bot(settings, wrap=wrap) as (app, wx):
        late = await wx.push(agree)
        assert late.content == agreed.content
        async with app.db.transaction() as tx:
            session = await tx.sessions.get(f"wechat:{RIDER}")
        assert session.step == "phone" and session.version == version
        assert await count_rows(app, processed_updates) == 2


async def test_a_slow_turn_answers_success_and_replies_by_customer_service_message(settings, fake) -> None:  # type: ignore[no-untyped-def]
    held: list[Counting] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        held.append(Counting(inner, held=True))
        return held[-1]

    subscribe = event_xml(RIDER, "subscribe", "qrscene_station3", create_time=1_760_000_100)
    async with wechat_bot(settings, wrap=wrap, deadline=0.05) as (app, wx):
        first = await wx.push(subscribe)
        retry = await wx.push(subscribe)  # WeChat's retry while the turn is still running
        assert first.is_success and retry.is_success
        held[0].release.set()
        sent = await fake.wait_for("message/custom/send")
        after = await wx.push(subscribe)  # a retry after it was delivered: not delivered again
        assert after.is_success
        assert len(held[0].calls) == 1
        assert len(fake.to("message/custom/send")) == 1
        body = sent[0].json
        assert body["touser"] == RIDER and body["msgtype"] == "text"
        assert "隐私说明" in body["text"]["content"] and "1 同意" in body["text"]["content"]
        async with app.db.transaction() as tx:
            assert (await tx.sessions.get(f"wechat:{RIDER}")).data["source"] == "station3"


async def test_forged_signatures_are_refused_with_nothing_processed(settings) -> None:  # type: ignore[no-untyped-def]
    counting: list[Counting] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        counting.append(Counting(inner))
        return counting[-1]

    async with wechat_bot(settings, wrap=wrap) as (app, wx):
        params, body = wx.encrypted_request(text_xml(RIDER, "菜单"))
        forged = await wx.send({**params, "msg_signature": "0" * 40}, body)
        assert forged.status == 403
        params, body = wx.plain_request(text_xml(RIDER, "菜单"))
        assert (await wx.send({**params, "signature": "0" * 40}, body)).status == 403
        assert (await wx.send({}, body)).status == 403
        other = await wx.send(*wx.encrypted_request(text_xml(RIDER, "菜单"), appid="wxsomebodyelse000"))
        assert other.status == 403
        # Rightly signed, but an hour ago: a replay, refused even once its dedupe marker is forgotten.
        params, body = wx.encrypted_request(text_xml(RIDER, "菜单"))
        real_now = app.now
        app.now = lambda: real_now() + timedelta(hours=1)
        assert (await wx.send(params, body)).status == 403
        app.now = real_now
        assert counting[0].calls == []
        assert await count_rows(app, processed_updates) == 0 and await count_rows(app, sessions) == 0


async def test_oversized_bodies_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    counting: list[Counting] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        counting.append(Counting(inner))
        return counting[-1]

    async with wechat_bot(settings, wrap=wrap) as (app, wx):
        big = text_xml(RIDER, "长" * 30_000)  # ~90 KB of UTF-8
        assert (await wx.push(big, safe=False)).status == 413
        assert (await wx.push(big)).status == 413

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(80):
                yield b"<!-- padding -->" * 64

        params, _ = wx.plain_request(b"")
        chunked = await wx.client.post("/wechat", params=params, content=chunks())
        assert chunked.status_code == 413
        assert counting[0].calls == [] and await count_rows(app, processed_updates) == 0


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    f"<xml><ToUserName>gh</ToUserName><FromUserName>{RIDER}</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&c;</Content><MsgId>1</MsgId></xml>"
)


async def test_xml_with_a_doctype_or_entities_is_refused_unexpanded(settings) -> None:  # type: ignore[no-untyped-def]
    counting: list[Counting] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        counting.append(Counting(inner))
        return counting[-1]

    async with wechat_bot(settings, wrap=wrap) as (app, wx):
        assert (await wx.push(LAUGHS, safe=False)).status == 400  # signed, plain
        assert (await wx.push(LAUGHS)).status == 400  # signed and encrypted: the inside is checked too
        params, body = wx.encrypted_request(text_xml(RIDER, "菜单"))
        outer = b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "x">]>' + body
        assert (await wx.send(params, outer)).status == 400
        assert counting[0].calls == [] and await count_rows(app, processed_updates) == 0


async def test_plain_mode_and_the_other_kinds_of_message(settings) -> None:  # type: ignore[no-untyped-def]
    counting: list[Counting] = []

    def wrap(inner):  # type: ignore[no-untyped-def]
        counting.append(Counting(inner))
        return counting[-1]

    async with wechat_bot(settings, wrap=wrap) as (app, wx):
        menu = await wx.push(text_xml(RIDER, "菜单"), safe=False)
        assert menu.status == 200 and "1 加入工会" in menu.content
        voice = await wx.push(message_xml(RIDER, "voice", "<MediaId>m1</MediaId><Recognition>帮助</Recognition>"))
        assert "菜单" in voice.content and counting[0].calls[-1].kind is Kind.TEXT
        mumble = await wx.push(message_xml(RIDER, "voice", "<MediaId>m2</MediaId><Recognition></Recognition>"))
        assert "打字" in mumble.content
        video = await wx.push(message_xml(RIDER, "video", "<MediaId>m3</MediaId><ThumbMediaId>t</ThumbMediaId>"))
        assert "看不懂" in video.content
        calls = len(counting[0].calls)
        photo = "<PicUrl><![CDATA[http://mmbiz.example/pic.jpg]]></PicUrl><MediaId><![CDATA[media-77]]></MediaId>"
        await wx.push(message_xml(RIDER, "image", photo))
        where = "<Location_X>30.25</Location_X><Location_Y>120.17</Location_Y><Scale>15</Scale><Label>x</Label>"
        await wx.push(message_xml(RIDER, "location", where))
        image_in, location_in = counting[0].calls[calls:]
        assert image_in.kind is Kind.PHOTO and image_in.media.file_id == "media-77"
        assert image_in.media.url == "http://mmbiz.example/pic.jpg"
        assert location_in.kind is Kind.LOCATION and location_in.location == (30.25, 120.17)
        card = await wx.push(event_xml(RIDER, "CLICK", "card"))
        assert counting[0].calls[-1].text == "/card" and "会员" in card.content
        gone = await wx.push(event_xml(RIDER, "unsubscribe"))
        assert gone.is_success
        assert await count_rows(app, outbox) == 0


async def test_the_official_sample_goes_through_the_endpoint(make_settings, fake) -> None:  # type: ignore[no-untyped-def]
    from tests.wechat.vectors import official_vectors

    sample = official_vectors()["decrypt"][0]
    settings = make_settings(
        wechat_token=sample["token"],
        wechat_aes_key=sample["encoding_aes_key"],
        wechat_appid=sample["appid"],
        wechat_secret="unused",
        wechat_api_url=fake.base,
    )
    async with wechat_bot(settings) as (app, wx):
        app.now = lambda: datetime.fromtimestamp(int(sample["timestamp"]) + 5, UTC)  # when WeChat sent it
        params = {k: sample[k] for k in ("timestamp", "nonce", "msg_signature", "signature")}
        response = await wx.client.post("/wechat", params={**params, "encrypt_type": "aes"}, content=sample["body_xml"])
        assert response.status_code == 200
        assert "<Encrypt>" in response.text and sample["expect"]["from_user"] not in response.text
        async with app.db.transaction() as tx:
            assert await tx.sessions.get(f"wechat:{sample['expect']['from_user']}") is not None


async def test_health_route_still_there(settings) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings) as (_, wx):
        assert (await wx.client.get("/healthz")).text == "ok"
        with pytest.raises(httpx.HTTPStatusError):
            (await wx.client.put("/wechat")).raise_for_status()
