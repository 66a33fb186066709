"""The anonymous complaint, its follow-up, a notice with an event sign-up, and muting, end to end on
WeChat: encrypted XML pushed to `/wechat` over real HTTP, answered in the passive reply; notices sent
by customer-service message through the fake WeChat API. Everything is typed (numbers and words):
nothing asks a WeChat user to tap, and wrong input at each step is answered and keeps the step."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from PIL import Image
from sqlalchemy import func, select

from bot.services import broadcasts as broadcast_service
from bot.services import complaints as complaint_service
from bot.services.broadcast_sender import FINISHED, BroadcastSender, wechat_deliverer
from bot.services.broadcasts import Segment
from bot.services.complaints import complaint_settings, local_today
from bot.services.events import create_event
from bot.services.media import path_of
from storage.schema import complaints, media, outbox
from tests.fakes.wechat_push import event_xml, message_xml, text_xml, wechat_bot
from tests.test_media import jpeg_with_gps
from tests.wechat.test_words import tapping

RIDER = "oRider_newflows_000000000000001"
KEEN = "oRider_newflows_000000000000002"
QUIET = "oRider_newflows_000000000000003"
STAFF = "wechat:oStaff_newflows_0000000000001"
RECEIPT = re.compile(r"\b(\d{4}) (\d{4}) (\d{4}) (\d{4})\b")
SECRET_TEXT = "站长每天扣我五十块钱押金，还不让请假"


def image_xml(openid: str, media_id: str) -> str:
    fields = (
        f"<PicUrl><![CDATA[http://mmbiz.example/{media_id}.jpg]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
    )
    return message_xml(openid, "image", fields)


def voice_xml(openid: str) -> str:
    return message_xml(openid, "voice", "<MediaId><![CDATA[v-1]]></MediaId><Format><![CDATA[amr]]></Format>")


class Talk:
    """One WeChat user typing; every reply kept, so a test can check none of them asks for a tap."""

    def __init__(self, wx, openid: str) -> None:  # type: ignore[no-untyped-def]
        self.wx = wx
        self.openid = openid
        self.replies: list[str] = []

    async def push(self, inner_xml: str) -> str:
        answer = await self.wx.push(inner_xml)
        assert answer.status == 200 and answer.content is not None, answer
        assert answer.to_user == self.openid
        self.replies.append(answer.content)
        return answer.content

    async def say(self, text: str) -> str:
        return await self.push(text_xml(self.openid, text))

    def no_tapping(self) -> None:
        for reply in self.replies:
            assert not tapping(reply), reply


async def count(app, table) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return (await tx.conn.execute(select(func.count()).select_from(table))).scalar_one()


async def join(wx, openid: str, phone: str, name: str) -> Talk:  # type: ignore[no-untyped-def]
    talk = Talk(wx, openid)
    await talk.push(event_xml(openid, "subscribe"))
    for typed in ("1", phone, name, "1", "1"):
        await talk.say(typed)
    assert "入会成功" in await talk.say("1")
    return talk


async def test_a_whole_complaint_and_its_follow_up_by_typing(settings, fake) -> None:  # type: ignore[no-untyped-def]
    jpeg = jpeg_with_gps()
    fake.put_media("m-gps", jpeg)
    async with wechat_bot(settings) as (app, wx):
        rider = Talk(wx, RIDER)
        intro = await rider.say("投诉")
        assert "不留的：您是谁" in intro and "1 开始" in intro and "2 查询投诉进度" in intro
        assert "要开始就选“开始”" in await rider.say("好的")
        target = await rider.say("1")
        assert "您要反映的是哪家" in target and "4 美团" in target
        assert "没找到这一家" in await rider.say("不存在的公司")
        assert "主要是哪方面的问题" in await rider.say("美团")  # the name typed works as well as its number
        assert "请从下面选一类" in await rider.say("随便")
        assert "第 1 项（共 5 项）：劳动关系" in await rider.say("1")
        assert "分数只能是 1 到 5 分" in await rider.say("9")
        assert "第 2 项（共 5 项）" in await rider.say("3")  # typed 3: three points
        assert "请把情况写下来" in await rider.say("7")  # no more ratings

        assert "语音" in await rider.push(voice_xml(RIDER))
        assert "这一步请用文字写几句" in await rider.push(image_xml(RIDER, "m-gps"))
        assert fake.to("media/get") == []  # not fetched where no picture is asked
        most = complaint_settings(app).max_description
        assert f"请控制在 {most} 个字以内" in await rider.say("长" * (most + 1))
        pictures = await rider.say(SECRET_TEXT)
        assert "要附上照片吗" in pictures and "1 不发照片，下一步" in pictures
        assert "这一步只收照片" in await rider.say("好的")
        assert "收到第 1 张" in await rider.push(image_xml(RIDER, "m-gps"))
        review = await rider.say("1")
        assert "对象：美团" in review and "劳动关系 3 分" in review and "照片：1 张" in review
        assert SECRET_TEXT in review and "1 匿名提交" in review
        assert "请选下面的一项" in await rider.say("嗯")
        sent = await rider.say("1")
        found = RECEIPT.search(sent)
        assert found and "只显示这一次" in sent
        code = "".join(found.groups())
        assert await count(app, complaints) == 1

        # The picture kept is the photo without its metadata.
        async with app.db.transaction() as tx:
            [row] = (await tx.conn.execute(select(media))).all()
        stored = path_of(app.settings.media_path(), row.sha256)
        with Image.open(stored) as picture:
            assert dict(picture.getexif()) == {} and "comment" not in picture.info
        assert stored.read_bytes() != jpeg and Image.open(io.BytesIO(jpeg)).getexif()

        # The union answers; the worker reads it by typing the code, and adds to the thread.
        async with app.db.transaction() as tx:
            complaint = await complaint_service.by_receipt(app, tx, code)
            assert complaint is not None
            await complaint_service.reply(app, tx, complaint.id, "已联系站点核实押金问题", local_today(app))
        assert "16 位回执码" in await rider.say("查询进度")
        assert "请用文字输入 16 位回执码" in await rider.push(image_xml(RIDER, "m-gps"))
        assert "位数不对" in await rider.say("12345")
        wrong = "1111 2222 3333 4444" if code != "1111222233334444" else "4444 3333 2222 1111"
        refused = await rider.say(wrong)
        assert "没找到这个回执码" in refused and "已联系站点" not in refused
        status = await rider.say(code)  # without spaces, as typed on a phone
        assert "工会已答复" in status and "已联系站点核实押金问题" in status
        assert "1 补充情况 / 回复工会" in status and "2 查完了" in status
        assert "查完了" in await rider.say("什么")
        assert "请写下要补充的情况" in await rider.say("1")
        assert "写得有点长" in await rider.say("补" * (complaint_service.MAX_MESSAGE + 1))
        assert "收到，已经转给工会" in await rider.say("押金已经退了一半")
        assert "回复“查询进度”" in await rider.say("2")
        async with app.db.transaction() as tx:
            thread = await complaint_service.thread(app, tx, complaint.id)
        assert [m.text for m in thread][-1] == "押金已经退了一半"

        rider.no_tapping()
        # The code was shown once, and nothing about the complaint went out by customer-service message.
        assert sum(code[:4] in r and code[-4:] in r for r in rider.replies) == 1
        assert fake.to("message/custom/send") == []


def custom_texts(fake, openid: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        c.json["text"]["content"]
        for c in fake.to("message/custom/send")
        if c.json["touser"] == openid and c.json["msgtype"] == "text"
    ]


async def test_a_notice_shows_its_sign_up_as_words_and_muting_works_by_words(settings, fake) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings) as (app, wx):
        keen = await join(wx, KEEN, "13800138201", "张三")
        quiet = await join(wx, QUIET, "13800138202", "李四")
        now = app.now()
        async with app.db.transaction() as tx:
            event = await create_event(
                app,
                tx,
                title="微笑集市",
                description="免费理发、测血压",
                station=None,
                place="西湖驿站",
                starts_at=now + timedelta(days=7),
                signup_deadline=now + timedelta(days=6),
                capacity=5,
                created_by=STAFF,
            )

        assert "工会通知已经关了" in await quiet.say("关闭通知")
        assert "本来就是关着的" in await quiet.say("关闭通知")

        async with app.db.transaction() as tx:
            b = await broadcast_service.create(
                app, tx, text="周六微笑集市，欢迎来", segment=Segment(), created_by=STAFF, event_id=event.id
            )
            await broadcast_service.start(app, tx, b.id, by=STAFF, background=False)
        before = len(custom_texts(fake, QUIET))
        async with wechat_deliverer(app) as deliverer:
            assert await BroadcastSender(app, b.id, {"wechat": deliverer}).run() == FINISHED

        assert len(custom_texts(fake, QUIET)) == before  # muted: nothing
        [notice] = [text for text in custom_texts(fake, KEEN) if "周六微笑集市" in text]
        assert f"我要报名：回复“报名 {event.id}”" in notice and "关闭通知" in notice
        assert not tapping(notice), notice
        async with app.db.transaction() as tx:
            report = await broadcast_service.report(app, tx, b.id)
        assert (report.recipients, report.sent, report.skipped_muted) == (1, 1, 1)

        # The member replies the words, from wherever the conversation is.
        assert "请问要办什么？回复选项前面的数字就可以。" in await keen.say("菜单")
        signed = await keen.say(f"报名 {event.id}")
        assert "报上了！「微笑集市」" in signed and "取消报名" in signed
        async with app.db.transaction() as tx:
            member = await tx.members.by_user_key(f"wechat:{KEEN}")
            signup = await tx.events.signup(event.id, member.id)
            assert signup is not None and signup.status == "confirmed"
        assert "您已经报过「微笑集市」了" in await keen.say(f"报名 {event.id}")
        assert "没找到这个活动" in await keen.say("报名 99999")
        async with app.db.transaction() as tx:
            assert (await tx.events.get(event.id)).left == 4

        # Notices on again: the next one arrives.
        assert "工会通知已经打开" in await quiet.say("打开通知")
        assert "本来就是开着的" in await quiet.say("打开通知")
        async with app.db.transaction() as tx:
            second = await broadcast_service.create(app, tx, text="下周讲座", segment=Segment(), created_by=STAFF)
            await broadcast_service.start(app, tx, second.id, by=STAFF, background=False)
        async with wechat_deliverer(app) as deliverer:
            assert await BroadcastSender(app, second.id, {"wechat": deliverer}).run() == FINISHED
        assert "下周讲座" in custom_texts(fake, QUIET)[-1]
        keen.no_tapping()
        quiet.no_tapping()


async def test_a_long_description_is_not_queued_under_the_sender(settings, fake) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings) as (app, wx):
        rider = Talk(wx, RIDER)
        for typed in ("投诉", "1", "美团", "1", "7"):
            await rider.say(typed)
        description = "押金" + "扣" * (complaint_settings(app).max_description - 2)
        await rider.say(description)
        assert "请核对一下" in await rider.say("1")  # no pictures: the review, which repeats the description
        async with app.db.transaction() as tx:
            queued = (await tx.conn.execute(select(outbox.c.body).where(outbox.c.user_key == f"wechat:{RIDER}"))).all()
        assert not [body for (body,) in queued if body and "押金" in body]
