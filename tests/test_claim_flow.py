"""理赔申请 and 我的理赔 through the console channel and the real dispatcher, on a real SQLite file,
with real photos sent as `/photo PATH`: a whole claim, each bad answer refused with the step kept, a
non-member sent to join, the member's list, and an answer to staff's question putting the claim back
under review. Payout details never appear in clear in the session, the database file or the logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Outgoing, T
from bot.handlers.console import parse_line
from bot.locale import Locale
from bot.runtime import running_bot
from bot.services import claims as service
from storage.schema import media, sessions
from tests.chat import Chat, join
from tests.test_media import jpeg_with_gps, pdf, png

L = Locale()
JOINED = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 on 1 March in Shanghai
NOW = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)  # 10:00 on 10 June in Shanghai
CARD = "6222 0202 0000 1234 567"
CARD_DIGITS = CARD.replace(" ", "")
ID_NUMBER = "11010519491231002X"  # GB 11643's own example: a valid check character
WRONG_ID = "110105194912310021"
STORY = "今天送餐时在路口被车撞了，腿受了伤。"


def t(key: str, lang: str = "zh_CN", **ctx) -> str:  # type: ignore[no-untyped-def]
    """As the terminal shows it ("选" where a phone says "点")."""
    return L.render(lang, T(key, **ctx), "console")


@dataclass
class Rider:
    app: BotContext
    chat: Chat
    files: Path

    async def line(self, text: str) -> Outgoing:
        """A line typed in the terminal, parsed as `gigunion console` parses it."""
        return await self.chat.send(parse_line(text, self.chat.user, None))

    async def photo(self, name: str, data: bytes) -> Outgoing:
        path = self.files / name
        path.write_bytes(data)
        return await self.line(f"/photo {path}")

    async def file(self, name: str, data: bytes) -> Outgoing:
        path = self.files / name
        path.write_bytes(data)
        return await self.line(f"/file {path}")

    async def where(self) -> tuple[str | None, str | None]:
        async with self.app.db.transaction() as tx:
            session = await tx.sessions.get(f"console:{self.chat.user}")
        return (session.flow, session.step) if session else (None, None)

    async def claims(self) -> list:  # type: ignore[type-arg]
        async with self.app.db.transaction() as tx:
            member = await tx.members.by_user_key(f"console:{self.chat.user}")
            return await tx.claims.for_member(member.id)


@pytest.fixture
async def running(make_settings, tmp_path: Path) -> AsyncIterator[tuple[BotContext, Dispatcher]]:  # type: ignore[no-untyped-def]
    settings = make_settings(media_dir=str(tmp_path / "media"))
    async with running_bot(settings) as (app, dispatcher):
        yield app, dispatcher


@pytest.fixture
def clock(running) -> list[datetime]:  # type: ignore[no-untyped-def]
    app, _ = running
    now = [JOINED]
    app.now = lambda: now[0]
    return now


@pytest.fixture
async def rider(running, clock, tmp_path: Path) -> Rider:  # type: ignore[no-untyped-def]
    """A member who joined on 1 March; it is now 10 June."""
    app, dispatcher = running
    chat = Chat(dispatcher, "alice")
    await join(chat)
    clock[0] = NOW
    return Rider(app, chat, tmp_path)


async def to_documents(r: Rider, kind: str = "意外伤害", day: str = "6月8日") -> Outgoing:
    await r.chat.say("我要理赔")
    await r.chat.tap(kind)
    await r.chat.say(day)
    await r.chat.say("6月8日晚上送餐时在文三路被电动车撞倒，右手腕骨折，去了市一医院。")
    return await r.chat.say("3200.50")


async def to_summary(r: Rider) -> Outgoing:
    await to_documents(r)
    await r.photo("diagnosis.jpg", jpeg_with_gps())
    await r.photo("receipt.png", png())
    await r.chat.tap("材料发完了")
    await r.chat.tap("银行卡")
    await r.chat.say("张三")
    await r.chat.say(CARD)
    return await r.chat.say(ID_NUMBER)


# -- a whole claim -----------------------------------------------------------------------------------
async def test_a_whole_claim_with_photos_through_the_console(rider: Rider) -> None:
    r = rider
    out = await r.chat.say("我要理赔")
    assert "意外伤害" in out.text and "10000.00 元" in out.text and "180 天" in out.text
    out = await r.chat.tap("意外伤害")
    assert t("claim.ask_date") in out.text
    out = await r.chat.tap("昨天")
    assert out.text.startswith(t("claim.ask_description", least=10, most=500)[:6])
    await r.chat.say("6月9日晚上送餐时在文三路被电动车撞倒，右手腕骨折，去了市一医院。")
    out = await r.chat.say("3200.50")
    assert "诊断证明或病历（必交）" in out.text and "出院小结（选交，住院的才需要）" in out.text
    assert "诊断证明或病历" in out.text.split("请发")[1].split("”")[0]
    assert t("claim.docs_finish_anyway") in r.chat.labels()

    out = await r.photo("diagnosis.jpg", jpeg_with_gps())
    assert t("claim.doc_received", item="诊断证明或病历", count=1) in out.text
    assert "✅ 诊断证明或病历（必交）：已收 1 份" in out.text
    assert "请发“医疗费用明细/发票”" in out.text  # on to the next required item by itself
    out = await r.photo("receipt-1.png", png(seed=5))
    out = await r.photo("receipt-2.pdf", pdf())  # a second page goes with the first, not elsewhere
    assert "✅ 医疗费用明细/发票（必交）：已收 2 份" in out.text
    assert t("claim.docs_done") in r.chat.labels()
    out = await r.chat.tap("下一份是：出院小结")
    assert "请发“出院小结”" in out.text
    out = await r.photo("discharge.png", png(seed=6))
    assert "✅ 出院小结（选交，住院的才需要）：已收 1 份" in out.text and "一共收到 4 份" in out.text

    out = await r.chat.tap("材料发完了")
    assert t("claim.ask_payout_kind") in out.text
    await r.chat.tap("银行卡")
    await r.chat.say("张三")
    out = await r.chat.say(CARD)
    assert t("claim.ask_id_number") in out.text
    out = await r.chat.say(ID_NUMBER)
    assert "6222***********4567" in out.text and "1101**********002X" in out.text and "张*" in out.text
    assert "3200.50 元" in out.text and "2026年6月9日" in out.text and "4 份" in out.text
    assert CARD_DIGITS not in out.text and ID_NUMBER not in out.text

    # A field changed from the summary comes straight back to it.
    out = await r.chat.tap("改申请金额")
    assert t("claim.ask_amount", limit="10000.00", type="意外伤害") in out.text
    out = await r.chat.say("3000元")
    assert "3000.00 元" in out.text and t("claim.confirm") in r.chat.labels()

    out = await r.chat.tap("确认提交")
    [claim] = await r.claims()
    assert claim.number.startswith("LP2026-") and claim.number in out.text
    assert "材料不全" not in out.text
    assert (claim.type, claim.incident_date.isoformat(), claim.claimed_fen) == ("injury", "2026-06-09", 300000)
    assert claim.description == "6月9日晚上送餐时在文三路被电动车撞倒，右手腕骨折，去了市一医院。"  # as written
    assert claim.status == service.SUBMITTED and not claim.incomplete and claim.payout_kind == "bank"
    assert r.app.keyring.decrypt(claim.payout_account_enc) == CARD_DIGITS
    assert r.app.keyring.decrypt(claim.payout_holder_enc) == "张三"
    assert r.app.keyring.decrypt(claim.id_number_enc) == ID_NUMBER
    async with r.app.db.transaction() as tx:
        docs = await tx.claims.documents(claim.id)
        linked = list(await tx.conn.execute(select(media.c.owner_kind, media.c.owner_id)))
    assert sorted(d.item for d in docs) == ["diagnosis", "discharge", "receipts", "receipts"]
    assert set(linked) == {("claim", claim.number)} and len(linked) == 4
    assert await r.where() == ("menu", "main")


async def test_finishing_without_the_required_documents_is_allowed_with_a_warning(rider: Rider) -> None:
    r = rider
    await to_documents(r, "家财损失", "6月1日")
    out = await r.photo("damage.jpg", jpeg_with_gps())
    assert "请发“物品清单及价值”" in out.text
    out = await r.chat.tap("先这些，下一步")
    assert t("claim.docs_missing_warning", missing=["物品清单及价值"]) in out.text
    out = await r.chat.tap("继续发材料")
    assert await r.where() == ("claim", "documents")
    await r.chat.tap("先这些，下一步")
    out = await r.chat.tap("先提交，以后补")
    assert t("claim.ask_payout_kind") in out.text
    await r.chat.tap("支付宝")
    await r.chat.say("李四")
    out = await r.chat.say("138 0013 8000")
    # No ID number for this type: straight to the summary.
    assert "138****8000" in out.text and t("claim.label_id_number") not in out.text
    out = await r.chat.tap("确认提交")
    [claim] = await r.claims()
    assert claim.incomplete and claim.missing == ("item_list",) and claim.id_number_enc is None
    assert "还缺：物品清单及价值" in out.text and claim.number in out.text


# -- bad answers: refused politely, the step kept ----------------------------------------------------
async def test_dates_refused_say_which_rule(rider: Rider) -> None:
    r = rider
    await r.chat.say("理赔")
    await r.chat.tap("意外伤害")
    out = await r.chat.say("2026-06-11")
    assert t("forms.date_future") in out.text
    assert await r.where() == ("pick_date", "date")
    out = await r.chat.say("2026-02-28")
    assert t("claim.date_before_joining", y=2026, m=3, d=1) in out.text
    assert await r.where() == ("pick_date", "date")
    out = await r.chat.say("明年吧")
    assert t("forms.date_invalid") in out.text
    assert await r.where() == ("pick_date", "date")
    out = await r.chat.say("2026-03-01")  # the day of joining is covered
    assert await r.where() == ("claim", "description")

    # Property: 30 days. 1 May is after joining, but 40 days ago.
    await r.chat.say("取消")
    await r.chat.say("理赔")
    await r.chat.tap("家财损失")
    out = await r.chat.say("5月1日")
    assert t("claim.date_outside_window", days=30, type="家财损失") in out.text
    assert await r.where() == ("pick_date", "date")
    await r.chat.say("5月11日")  # exactly 30 days ago
    assert await r.where() == ("claim", "description")


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("10000.01", t("claim.amount_over_limit", limit="10000.00", type="意外伤害")),
        ("0", t("claim.amount_zero")),
        ("0.00", t("claim.amount_zero")),
        ("-5", t("claim.amount_negative")),
        ("好多钱", t("claim.amount_not_number")),
        ("12.345", t("claim.amount_decimals")),
    ],
)
async def test_bad_amounts_are_refused_and_the_step_kept(rider: Rider, typed: str, answer: str) -> None:
    r = rider
    await r.chat.say("理赔")
    await r.chat.tap("意外伤害")
    await r.chat.say("6月8日")
    await r.chat.say("6月8日晚上送餐时在文三路被电动车撞倒，右手腕骨折。")
    out = await r.chat.say(typed)
    assert answer in out.text
    assert await r.where() == ("claim", "amount")
    out = await r.chat.say("10000")  # the limit itself is allowed
    assert await r.where() == ("claim", "documents")


async def test_a_wrong_id_check_digit_and_an_unsupported_file_are_refused(rider: Rider) -> None:
    r = rider
    await to_documents(r)
    out = await r.file("notes.txt", "这是一份文字说明，不是照片。".encode())
    assert t("media.refused_wrong_type") in out.text
    assert await r.where() == ("claim", "documents")
    async with r.app.db.transaction() as tx:
        assert not list(await tx.conn.execute(select(media.c.id)))
    await r.photo("d.jpg", jpeg_with_gps())
    await r.photo("r.png", png())
    await r.chat.tap("材料发完了")
    await r.chat.tap("银行卡")
    await r.chat.say("张三")
    await r.chat.say(CARD)
    out = await r.chat.say(WRONG_ID)
    assert t("claim.id_invalid") in out.text
    assert await r.where() == ("claim", "id_number")


async def test_garbage_at_every_step_gets_a_polite_answer_and_stays(rider: Rider) -> None:
    r = rider
    answers = [
        # (how to reach the step, garbage, the reply to expect, the step)
        (lambda: r.chat.say("理赔"), "随便", "claim.choose_type", ("claim", "type")),
        (lambda: r.chat.tap("意外伤害"), "改天再说", "forms.date_invalid", ("pick_date", "date")),
        (lambda: r.chat.tap("今天"), "啊", "claim.description_short", ("claim", "description")),
        (lambda: r.chat.say(STORY), "很多", "claim.amount_not_number", ("claim", "amount")),
        (lambda: r.chat.say("500"), "好的吗", "claim.docs_hint", ("claim", "documents")),
        (lambda: r.photo("a.jpg", jpeg_with_gps()), "嗯嗯", "claim.docs_hint", ("claim", "documents")),
        (lambda: r.photo("b.png", png()), "？？", "claim.docs_hint", ("claim", "documents")),
        (lambda: r.chat.tap("材料发完了"), "微信", "claim.choose_payout_kind", ("claim", "payout_kind")),
        (lambda: r.chat.tap("银行卡"), "123", "claim.holder_invalid", ("claim", "payout_holder")),
        (lambda: r.chat.say("张三"), "卡号忘了", "claim.account_invalid_bank", ("claim", "payout_account")),
        (lambda: r.chat.say(CARD), "不告诉你", "claim.id_invalid", ("claim", "id_number")),
        (lambda: r.chat.say(ID_NUMBER), "嗯", "engine.choose_option", ("claim", "confirm")),
    ]
    for reach, garbage, key, step in answers:
        await reach()
        assert await r.where() == step
        out = await r.chat.say(garbage)
        assert t(key, least=10, most=20) in out.text or t(key) in out.text, (step, out.text)
        assert await r.where() == step
    # A photo where text is wanted is no answer either.
    await r.chat.tap("改事情经过")
    out = await r.photo("c.png", png(seed=9))
    assert t("claim.description_short", least=10) in out.text
    assert await r.where() == ("claim", "description")


async def test_someone_not_yet_a_member_is_invited_to_join(running) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = running
    chat = Chat(dispatcher, "bob")
    for ask in (chat.say("理赔"), chat.command("/claim"), chat.say("我的理赔")):
        out = await ask
        assert t("claim.join_first") in out.text
        assert t("menu.join") in chat.labels()
    await chat.command("/start")
    await chat.command("/menu")
    assert t("claim.menu") not in chat.labels() and t("claim.my_menu") not in chat.labels()


# -- my claims ---------------------------------------------------------------------------------------
async def test_my_claims_lists_them_and_a_needs_info_claim_takes_a_new_photo(rider: Rider) -> None:
    r = rider
    out = await r.chat.say("我的理赔")
    assert t("claim.none_yet") in out.text
    await to_summary(r)
    await r.chat.tap("确认提交")
    [claim] = await r.claims()

    out = await r.chat.say("理赔进度")
    assert claim.number in out.text and "意外伤害" in out.text and "3200.50 元" in out.text
    assert t("claims.status_submitted") in out.text
    out = await r.chat.tap(claim.number)
    assert t("claims.status_submitted") in out.text and t("claim.answer") not in r.chat.labels()

    async with r.app.db.transaction() as tx:
        await service.take(tx, r.app, claim.number, actor="console:staff", now=NOW)
        await service.move(
            tx, r.app, claim.number, service.NEEDS_INFO, actor="console:staff", now=NOW,
            missing=["discharge"], note="住院了的话请补出院小结",
        )  # fmt: skip
    out = await r.chat.tap("返回列表")
    assert t("claims.status_needs_info") in out.text and "缺：出院小结" in out.text
    out = await r.chat.tap(claim.number)
    assert "工作人员需要您补充：出院小结" in out.text and "住院了的话请补出院小结" in out.text
    out = await r.chat.tap("补材料")
    assert await r.where() == ("my_claims", "answer")
    out = await r.file("notes.txt", b"not a picture")
    assert t("media.refused_wrong_type") in out.text
    out = await r.photo("discharge.jpg", jpeg_with_gps(seed=4))
    assert t("claim.doc_received", item="出院小结", count=1) in out.text
    await r.chat.say("住了三天院，出院小结拍好了。")
    out = await r.chat.tap("提交补充")
    assert t("claim.answer_sent", number=claim.number) in out.text
    assert t("claims.status_under_review") in out.text

    [claim] = await r.claims()
    assert claim.status == service.UNDER_REVIEW
    async with r.app.db.transaction() as tx:
        docs = await tx.claims.documents(claim.id)
        history = await tx.claims.history(claim.id)
    assert sorted(d.item for d in docs) == ["diagnosis", "discharge", "receipts"]
    assert [e.to_status for e in history][-1] == service.UNDER_REVIEW
    assert history[-1].actor != "console:staff"  # the member answered


async def test_my_claims_pages_a_long_list(rider: Rider) -> None:
    r = rider
    async with r.app.db.transaction() as tx:
        member = await tx.members.by_user_key("console:alice")
        for i in range(8):
            draft = {
                "type": "property", "incident_date": "2026-06-01", "description": f"第{i}次，雨水把家里东西泡了。",
                "claimed_fen": 10000 + i, "media": [], "payout_kind": "alipay",
                "payout_holder_enc": r.app.keyring.encrypt("张三"),
                "payout_account_enc": r.app.keyring.encrypt("13800138000"), "id_number_enc": None,
            }  # fmt: skip
            await service.submit(tx, r.app, member, draft, now=NOW, actor="console:alice")
    out = await r.chat.say("我的理赔")
    assert "共 8 笔" in out.text and "第 1/2 页" in out.text
    assert out.text.count("LP2026-") == 6
    out = await r.chat.tap("下一页")
    assert "第 2/2 页" in out.text and out.text.count("LP2026-") == 2


# -- privacy -------------------------------------------------------------------------------------------
def database_bytes(folder: Path) -> bytes:
    """The database as it lies on disk, write-ahead log included."""
    return b"".join(p.read_bytes() for p in folder.glob("gigunion.db*"))


async def test_the_card_and_id_number_are_never_in_clear(rider: Rider, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    r = rider
    await to_summary(r)
    async with r.app.db.transaction() as tx:
        row = (await tx.conn.execute(select(sessions.c.data).where(sessions.c.user_key == "console:alice"))).one()
    assert CARD_DIGITS not in str(row.data) and ID_NUMBER not in str(row.data) and "张三" not in str(row.data)
    assert "payout_account_enc" in str(row.data)
    await r.chat.tap("确认提交")
    raw = database_bytes(tmp_path)
    for secret in (CARD_DIGITS, CARD, ID_NUMBER, "6222 0202"):
        assert secret.encode() not in raw
    logged = caplog.text + "".join(str(rec.args) for rec in caplog.records)
    assert CARD_DIGITS not in logged and ID_NUMBER not in logged
