"""The staff review of claims in the chat: who sees it, the queue, a claim in full (payout details
masked, documents sent back as pictures), each decision confirmed and recorded, two reviewers at
once, and a staffer whose role is taken away mid-review."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from bot.services import claims as service
from bot.services.media import store
from storage.claims import Claim
from tests.chat import Chat, join

BANK_ACCOUNT = "6222020200112233445"
ID_NUMBER = "11010519491231002X"
HOLDER = "王小明"
TOOL, STAFF_MENU_DONE = "理赔审核", "退出工作人员菜单"
CONFIRM, NEXT = "确认，执行", "下一页"


def picture(fmt: str, colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(out, fmt)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def staffer(bot, user: str, role: str, name: str = "李老师") -> Chat:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with app.db.transaction() as tx:
        await tx.staff.add(f"telegram:{user}", role, name, app.now())
    return Chat(dispatcher, channel="telegram", user=user)


async def new_claim(bot, n: int = 1, *, amount: int = 80000, files: tuple[tuple[bytes, str], ...] = ()) -> Claim:  # type: ignore[no-untyped-def]
    """A member who joined through the chat, and their claim as the member flow submits it."""
    app, dispatcher = bot
    rider = f"rider{n}"
    await join(Chat(dispatcher, user=rider), phone=f"1380013{n:04d}", name="张三丰")
    media = []
    for data, item in files:
        stored = await store(
            app.db, app.settings.media_path(), data, max_bytes=app.settings.media_max_bytes, now=app.now()
        )
        media.append({"id": stored.id, "item": item})
    draft: dict[str, Any] = {
        "type": "injury",
        "incident_date": "2026-01-20",
        "description": f"送餐途中摔倒，右手腕骨折 #{n}",
        "claimed_fen": amount,
        "media": media,
        "payout_kind": "bank",
        "payout_holder_enc": app.keyring.encrypt(HOLDER),
        "payout_account_enc": app.keyring.encrypt(BANK_ACCOUNT),
        "id_number_enc": app.keyring.encrypt(ID_NUMBER),
    }
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key(f"console:{rider}")
        return await service.submit(tx, app, member, draft, now=app.now(), actor=f"console:{rider}")


async def claim_now(app, number: str) -> Claim:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.claims.by_number(number)


async def history(app, number: str) -> list[tuple[str | None, str, str, str | None]]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        claim = await tx.claims.by_number(number)
        return [(e.from_status, e.to_status, e.actor, e.note) for e in await tx.claims.history(claim.id)]


async def open_claim(chat: Chat, number: str) -> str:
    await chat.command("/staff")
    await chat.tap(TOOL)
    return (await chat.tap(number)).text


async def move(app, number: str, to: str, **kw) -> Claim:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await service.move(tx, app, number, to, actor="cli", now=app.now(), **kw)


# -- who sees it ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "sees"), [("claims", True), ("admin", True), ("counsellor", False),
                                            ("complaints", False), ("broadcaster", False)])  # fmt: skip
async def test_only_claims_officers_and_admin_have_the_tool(bot, role: str, sees: bool) -> None:  # type: ignore[no-untyped-def]
    chat = await staffer(bot, "1", role)
    await chat.command("/staff")
    assert (TOOL in chat.labels()) is sees
    out = await chat.command("/review")
    if sees:
        assert "待处理的理赔共 0 件" in out.text
    else:
        assert "理赔专员" in out.text and "没有开通" in out.text and "加入工会" in chat.labels()


async def test_members_and_strangers_are_refused(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    member = Chat(dispatcher, user="m")
    await join(member)
    for chat in (member, Chat(dispatcher, user="stranger")):
        out = await chat.command("/review")
        assert "只对工会工作人员开放" in out.text and "理赔" not in out.text
        assert TOOL not in chat.labels()


# -- the queue -----------------------------------------------------------------------------------------
async def test_the_queue_pages_oldest_first_with_counts_and_a_paying_view(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    numbers = [(await new_claim(bot, n)).number for n in range(1, 10)]
    await move(app, numbers[1], service.UNDER_REVIEW)
    await move(app, numbers[2], service.UNDER_REVIEW)
    await move(app, numbers[2], service.NEEDS_INFO, missing=["receipts"], note="请补发票")
    await move(app, numbers[3], service.UNDER_REVIEW)
    await move(app, numbers[3], service.APPROVED, approved_fen=50000)
    chat = await staffer(bot, "1", "claims")
    out = await chat.command("/review")
    assert "共 8 件" in out.text and "新提交待受理 6 件，审核中 1 件，等会员补材料 1 件" in out.text
    assert "第 1/2 页" in out.text
    shown = [label.split(" · ")[0] for label in chat.labels() if label.startswith("LP")]
    review = [n for n in numbers if n != numbers[3]]
    assert shown == review[:6]  # oldest first
    assert any("审核中" in label for label in chat.labels()) and any("需要补充材料" in x for x in chat.labels())
    out = await chat.tap(NEXT)
    assert "第 2/2 页" in out.text
    assert [label.split(" · ")[0] for label in chat.labels() if label.startswith("LP")] == review[6:]
    out = await chat.tap("等打款")
    assert "等打款的理赔共 1 件" in out.text
    assert [label.split(" · ")[0] for label in chat.labels() if label.startswith("LP")] == [numbers[3]]
    out = await chat.say(numbers[0].lower())  # a number typed opens it
    assert f"理赔 {numbers[0]}" in out.text
    await chat.tap("返回理赔列表")
    out = await chat.say("LP1999-000001")
    assert "没有找到编号为 LP1999-000001" in out.text and "等打款的理赔共 1 件" in out.text


# -- one claim in full ---------------------------------------------------------------------------------
async def test_a_claim_in_full_with_payout_details_masked(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot, files=((picture("PNG", "red"), "diagnosis"),))
    chat = await staffer(bot, "1", "claims")
    text = await open_claim(chat, claim.number)
    assert f"理赔 {claim.number} · 已提交，等待审核" in text
    assert "意外伤害" in text and "800.00 元" in text and "送餐途中摔倒" in text
    async with app.db.transaction() as tx:
        member = await tx.members.by_id(claim.member_id)
    assert f"会员：张**，手机 138****0001，会员号 {member.member_number}" in text
    assert "户名：王**" in text and "账号：6222***********3445" in text and "身份证号：1101**********002X" in text
    assert "✅ 诊断证明或病历（1 份）" in text and "❌ 医疗费用明细/发票（还没交）" in text
    assert "⚠️ 提交时材料不齐" in text
    assert "经办记录" in text and "会员：已提交，等待审核" in text
    assert chat.labels() == ["🖼 看材料（1 份）", "📥 受理，由我审核", "返回理赔列表"]


async def test_documents_come_back_as_pictures_one_at_a_time(bot) -> None:  # type: ignore[no-untyped-def]
    png, jpeg = picture("PNG", "red"), picture("JPEG", "blue")
    claim = await new_claim(bot, files=((png, "diagnosis"), (PDF, "receipts"), (jpeg, "other")))
    chat = await staffer(bot, "1", "claims")
    await open_claim(chat, claim.number)
    out = await chat.tap("看材料")
    assert out.image == png and "材料 1/3：诊断证明或病历" in out.text
    out = await chat.tap("下一份")
    assert out.image is None and "材料 2/3：医疗费用明细/发票" in out.text and "PDF 文件" in out.text
    assert "KB" in out.text
    out = await chat.tap("下一份")
    assert "材料 3/3：其他材料" in out.text
    with Image.open(io.BytesIO(out.image)) as shown:  # the JPEG as it was kept
        assert shown.format == "JPEG" and shown.size == (8, 6)
    out = await chat.tap("下一份")
    assert out.image == png and "材料 1/3" in out.text  # round again
    out = await chat.tap("返回这件理赔")
    assert f"理赔 {claim.number}" in out.text and out.image is None


# -- each decision -------------------------------------------------------------------------------------
async def test_take_then_approve_then_paid(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    chat = await staffer(bot, "1", "claims")
    await open_claim(chat, claim.number)
    out = await chat.tap("受理")
    assert "请确认：受理理赔" in out.text and "变成“审核中”" in out.text
    assert (await claim_now(app, claim.number)).status == service.SUBMITTED  # nothing before confirming
    out = await chat.tap(CONFIRM)
    assert "✅ 已受理" in out.text and "现在是“审核中”" in out.text and "经办人：您" in out.text
    assert (await claim_now(app, claim.number)).assignee == "telegram:1"
    out = await chat.tap("批准赔付")
    assert "申请金额 800.00 元" in out.text
    out = await chat.say("650.5")
    assert "批准赔付 650.50 元（比申请的 800.00 元少" in out.text
    out = await chat.tap("修改")  # back to the amount, nothing applied
    assert "请输入批准赔付的金额" in out.text
    await chat.tap("全额")
    out = await chat.tap(CONFIRM)
    assert "现在是“已通过”" in out.text and "批准金额：800.00 元" in out.text
    out = await chat.tap("登记已打款")
    out = await chat.say("有 空格")
    assert "凭证号不对" in out.text
    out = await chat.say("TX20260301-88")
    assert "付款凭证号：TX20260301-88" in out.text and "不能改" in out.text
    out = await chat.tap(CONFIRM)
    assert "现在是“已打款”" in out.text
    now = await claim_now(app, claim.number)
    assert (now.status, now.approved_fen, now.payment_ref) == ("paid", 80000, "TX20260301-88")
    assert [(f, t, a) for f, t, a, _ in await history(app, claim.number)] == [
        (None, "submitted", "console:rider1"),
        ("submitted", "under_review", "telegram:1"),
        ("under_review", "approved", "telegram:1"),
        ("approved", "paid", "telegram:1"),
    ]
    assert set(chat.labels()) == {"返回理赔列表"}  # paid: settled, nothing more to do


async def test_ask_for_information_with_several_items_and_a_note(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot, files=((picture("PNG", "red"), "diagnosis"),))
    await move(app, claim.number, service.UNDER_REVIEW)
    chat = await staffer(bot, "1", "claims")
    await open_claim(chat, claim.number)
    await chat.tap("请会员补材料")
    # What is still missing comes ticked; tick one more.
    assert "☑ 医疗费用明细/发票" in chat.labels() and "☐ 出院小结" in chat.labels()
    await chat.tap("☐ 出院小结")
    assert "☑ 出院小结" in chat.labels()
    await chat.tap("下一步")
    out = await chat.say("x")
    assert "至少两个字" in out.text and "不用留言" in chat.labels()  # the step is kept
    out = await chat.say("发票要医院盖章的原件照片")
    assert "要补的材料：医疗费用明细/发票、出院小结" in out.text and "发票要医院盖章的原件照片" in out.text
    out = await chat.tap(CONFIRM)
    assert "现在是“需要补充材料”" in out.text and "已经请会员补：医疗费用明细/发票、出院小结" in out.text
    now = await claim_now(app, claim.number)
    assert now.missing == ("receipts", "discharge") and now.info_note == "发票要医院盖章的原件照片"
    assert (await history(app, claim.number))[-1] == (
        "under_review",
        "needs_info",
        "telegram:1",
        "发票要医院盖章的原件照片",
    )


async def test_reject_with_a_reason_and_a_note(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    await move(app, claim.number, service.UNDER_REVIEW)
    chat = await staffer(bot, "1", "admin")
    await open_claim(chat, claim.number)
    await chat.tap("驳回")
    assert "超过了申请期限" in chat.labels()
    out = await chat.say("随便")
    assert "请" in out.text and "超过了申请期限" in chat.labels()
    await chat.tap("超过了申请期限")
    out = await chat.say("事发已经超过 180 天")
    assert "理由：超过了申请期限" in out.text and "说明：事发已经超过 180 天" in out.text
    out = await chat.tap(CONFIRM)
    assert "现在是“未通过”" in out.text and "驳回理由：超过了申请期限（事发已经超过 180 天）" in out.text
    now = await claim_now(app, claim.number)
    assert (now.status, now.reason_code, now.reason_text) == ("rejected", "outside_window", "事发已经超过 180 天")
    assert (await history(app, claim.number))[-1][:3] == ("under_review", "rejected", "telegram:1")


@pytest.mark.parametrize(("typed", "says"), [("900", "超过了申请金额"), ("800.01", "超过了申请金额"),
                                             ("0", "看不懂"), ("-5", "看不懂"), ("12.345", "看不懂"),
                                             ("八百", "看不懂")])  # fmt: skip
async def test_a_bad_amount_is_refused_and_the_step_kept(bot, typed: str, says: str) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    await move(app, claim.number, service.UNDER_REVIEW)
    chat = await staffer(bot, "1", "claims")
    await open_claim(chat, claim.number)
    await chat.tap("批准赔付")
    before = chat.labels()
    out = await chat.say(typed)
    assert says in out.text and "请输入批准赔付的金额" in out.text and chat.labels() == before
    out = await chat.say("800")
    assert "请确认：批准理赔" in out.text
    assert (await claim_now(app, claim.number)).status == service.UNDER_REVIEW


# -- two at once, and a role taken away ----------------------------------------------------------------
async def test_two_reviewers_approving_at_once_one_wins_the_other_is_told(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    await move(app, claim.number, service.UNDER_REVIEW)
    first, second = await staffer(bot, "1", "claims", "李老师"), await staffer(bot, "2", "claims", "王老师")
    for chat, amount in ((first, "500"), (second, "700")):
        await open_claim(chat, claim.number)
        await chat.tap("批准赔付")
        await chat.say(amount)
    won = await first.tap(CONFIRM)
    lost = await second.tap(CONFIRM)
    assert "现在是“已通过”" in won.text
    assert "没有执行" in lost.text and "批准赔付" in lost.text and "没有生效" in lost.text
    assert "被别人改动过" in lost.text and "批准金额：500.00 元" in lost.text  # its new state
    now = await claim_now(app, claim.number)
    assert (now.status, now.approved_fen) == ("approved", 50000)
    assert [e for e in await history(app, claim.number) if e[1] == "approved"] == [
        ("under_review", "approved", "telegram:1", None)
    ]
    assert "李老师" in lost.text  # who did it, in the history


async def test_a_decision_on_what_changed_since_it_was_seen_is_refused_even_in_the_same_state(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    await move(app, claim.number, service.UNDER_REVIEW)
    chat = await staffer(bot, "1", "claims")
    await open_claim(chat, claim.number)
    await chat.tap("批准赔付")
    await chat.say("800")
    # Meanwhile: more information asked for and sent; the claim is under review again, but not as seen.
    await move(app, claim.number, service.NEEDS_INFO, note="请补发票")
    async with app.db.transaction() as tx:
        member = await tx.members.by_id(claim.member_id)
        await service.add_info(tx, app, claim.number, member, answer="发票已补", now=app.now())
    out = await chat.tap(CONFIRM)
    assert "没有执行" in out.text and "被别人改动过" in out.text and "发票已补" in out.text
    assert (await claim_now(app, claim.number)).status == service.UNDER_REVIEW
    out = await chat.tap("批准赔付")  # now on what was shown: it goes through
    await chat.say("800")
    assert "现在是“已通过”" in (await chat.tap(CONFIRM)).text


async def test_two_reviewers_taking_at_once(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    first, second = await staffer(bot, "1", "claims"), await staffer(bot, "2", "admin", "王老师")
    for chat in (first, second):
        await open_claim(chat, claim.number)
        await chat.tap("受理")
    assert "已受理" in (await second.tap(CONFIRM)).text
    lost = await first.tap(CONFIRM)
    assert "没有执行" in lost.text and "经办人：王老师" in lost.text
    assert len([e for e in await history(app, claim.number) if e[1] == "under_review"]) == 1


async def test_a_staffer_whose_role_is_removed_mid_review_is_stopped(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    claim = await new_claim(bot)
    await move(app, claim.number, service.UNDER_REVIEW)
    chat = await staffer(bot, "1", "claims")
    await open_claim(chat, claim.number)
    await chat.tap("批准赔付")
    await chat.say("800")
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:1", "counsellor", "李老师", app.now())  # now a counsellor only
    out = await chat.tap(CONFIRM)
    assert "权限有变动" in out.text and "加入工会" in chat.labels()
    assert (await claim_now(app, claim.number)).status == service.UNDER_REVIEW
    # Removed altogether: the same.
    other = await staffer(bot, "2", "claims")
    await open_claim(other, claim.number)
    async with app.db.transaction() as tx:
        await tx.staff.remove("telegram:2")
    out = await other.tap("驳回")
    assert "权限已经取消" in out.text and "超过了申请期限" not in chat.labels()
    assert len(await history(app, claim.number)) == 2


async def test_payout_details_never_appear_unmasked(bot) -> None:  # type: ignore[no-untyped-def]
    claim = await new_claim(bot, files=((picture("PNG", "red"), "diagnosis"),))
    steps = {
        "zh_CN": (claim.number, "受理", "确认", "批准赔付", "全额", "确认", "看材料"),
        "en": ("Waiting to be paid", claim.number, "See the documents"),  # approved by then
    }
    for user, lang in (("1", "zh_CN"), ("2", "en")):
        chat = await staffer(bot, user, "claims")
        chat.extra["language_hint"] = lang
        await chat.command("/review")
        for label in steps[lang]:
            await chat.tap(label)
        assert chat.last is not None and chat.last.image is not None  # got as far as the documents
        seen = "\n".join(o.text + "\n".join(b.label for b in o.buttons) for o in chat.history)
        assert "6222***********3445" in seen and "1101**********002X" in seen and "王**" in seen
        for secret in (BANK_ACCOUNT, ID_NUMBER, HOLDER, "13800130001", BANK_ACCOUNT[4:-4], ID_NUMBER[4:-4]):
            assert secret not in seen
