"""匿名投诉/点评 and 查询进度 through the real dispatcher on a real SQLite file: every way in, for anyone,
the steps and their garbage (in Chinese and in English, the step kept), pictures stripped and stamped
by day, the receipt code shown once, the follow-up thread both ways, the wrong-code limits, and nothing
in the outbox for the sender.

The helpers here (`complain`, `receipt_of`, `track`) are used by the other anonymity tests.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.engine.messages import Kind, Media, Outgoing, T
from bot.locale import Locale
from bot.services import complaints as service
from bot.services.receipts import ReceiptGuard
from storage.schema import complaint_messages, complaints, media, outbox, review_scores
from tests.chat import Chat, join
from tests.test_media import GPS_IFD, jpeg_with_gps, path_of, pdf

L = Locale()
RECEIPT = re.compile(r"\b(\d{4}) (\d{4}) (\d{4}) (\d{4})\b")
SECRET_TEXT = "站长每天扣我五十块钱押金，还不让请假"


def t(key: str, lang: str = "zh_CN", **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.render(lang, T(key, **ctx), "console")  # as the console shows it


def receipt_of(out: Outgoing) -> str:
    found = RECEIPT.search(out.text)
    assert found, out.text
    return "".join(found.groups())


async def complain(
    chat: Chat, text: str = SECRET_TEXT, *, company: str = "美团", ratings: tuple[int, ...] = (), way: str = "投诉"
) -> str:
    """A whole complaint, by taps where there are buttons; the receipt code given back."""
    await chat.say(way)
    await chat.tap(0)  # start
    await chat.say(company)
    await chat.tap(0)  # the first category
    for score in ratings:
        await chat.say(str(score))
    if len(ratings) < 5:
        await chat.tap(-1)  # no (more) ratings
    await chat.say(text)
    await chat.tap(0)  # no pictures
    return receipt_of(await chat.tap(0))  # send


async def step_of(app, user_key: str) -> tuple[str | None, str | None]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        session = await tx.sessions.get(user_key)
    return (session.flow, session.step) if session else (None, None)


async def count(app, table) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return (await tx.conn.execute(select(func.count()).select_from(table))).scalar_one()


# -- ways in and who ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("way", ["投诉", "匿名投诉", "点评", "complain", "/complain", "menu"])
async def test_every_way_in_opens_the_statement_of_what_is_kept(bot, way: str) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "way")
    if way == "menu":
        await chat.command("/menu")
        out = await chat.tap(t("complain.menu"))
    elif way.startswith("/"):
        out = await chat.command(way)
    else:
        out = await chat.say(way)
    assert "不留的：您是谁" in out.text and "16 位的回执码" in out.text
    assert chat.labels() == [t("complain.begin"), t("track.menu"), t("complain.not_now")]


async def test_the_intro_leads_to_following_one_up(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "way")
    await chat.say("投诉")
    out = await chat.tap(t("track.menu"))
    assert out.text == (await Chat(dispatcher, "other").say("查询进度")).text


async def test_members_staff_and_strangers_alike_can_complain(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    member = Chat(dispatcher, "member")
    await join(member)
    async with app.db.transaction() as tx:
        await tx.staff.add("console:boss", "admin", "Boss", app.now())
    codes = [await complain(Chat(dispatcher, who)) for who in ("member", "boss", "stranger")]
    assert len(set(codes)) == 3
    assert await count(app, complaints) == 3
    # The menu offers it to all of them, and following up too.
    for who in ("member", "stranger"):
        chat = Chat(dispatcher, who)
        await chat.command("/menu")
        assert t("complain.menu") in chat.labels()


# -- the steps ---------------------------------------------------------------------------------------------------
async def test_a_complaint_is_kept_with_its_ratings_and_no_sender(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "rider")
    await chat.say("匿名投诉")
    await chat.tap("开始")
    assert "哪方面" in (await chat.tap("饿了么")).text
    assert "第 1 项（共 5 项）：劳动关系" in (await chat.tap(t("complain.cat_safety"))).text
    await chat.tap("2 分")
    await chat.tap(t("complain.skip_one"))
    assert "第 4 项" in (await chat.say("4")).text  # typed: the number is the score
    await chat.say("5")
    out = await chat.say("1")
    assert out.text.startswith("请把情况写下来")
    await chat.say(SECRET_TEXT)
    review = await chat.tap(0)
    assert "对象：饿了么" in review.text and "问题：劳动安全" in review.text
    assert "劳动关系 2 分、劳动安全 4 分、民主管理 5 分、工会服务 1 分" in review.text and SECRET_TEXT in review.text
    sent = await chat.tap("匿名提交")
    code = receipt_of(sent)
    assert code[0] != "0" and "只显示这一次" in sent.text
    assert (await step_of(app, "console:rider")) == ("menu", "main")

    async with app.db.transaction() as tx:
        found = await service.by_receipt(app, tx, code)
        assert found is not None and (found.target_kind, found.target, found.category) == (
            "company",
            "饿了么",
            "safety",
        )
        assert service.description(app, found) == SECRET_TEXT
        assert found.submitted_on == service.local_today(app)
        scores = dict((await tx.conn.execute(select(review_scores.c.indicator, review_scores.c.score))).all())
        row = (await tx.conn.execute(select(complaints))).one()._mapping
    assert scores == {"labour_relations": 2, "safety": 4, "democratic_management": 5, "union_service": 1}
    held = " ".join(str(v) for v in row.values())
    for personal in ("rider", "console:", SECRET_TEXT, code):
        assert personal not in held


async def test_the_union_and_other_targets_and_changing_the_description(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "u")
    await chat.say("投诉")
    await chat.tap(0)
    await chat.tap(t("complain.target_union"))
    await chat.tap(t("complain.cat_union_service"))
    await chat.tap(t("complain.skip_all"))
    await chat.say("第一版")
    await chat.tap(0)
    await chat.tap(t("complain.change_description"))
    review = await chat.say("改过的说法")
    assert "对象：工会自己的服务" in review.text and "改过的说法" in review.text and "第一版" not in review.text
    await chat.tap(t("complain.send"))
    await complain(Chat(dispatcher, "o"), "别的公司", company=t("complain.target_other"))
    async with app.db.transaction() as tx:
        kinds = sorted((await tx.conn.execute(select(complaints.c.target_kind, complaints.c.target))).all())
    assert kinds == [("other", None), ("union", None)]


async def test_a_score_button_of_an_earlier_indicator_is_stale(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "stale")
    await _at(chat, "rate")
    first = chat.last
    await chat.tap("2 分")
    out = await chat.tap("5 分", message=first)  # the first indicator's message, tapped again
    assert t("engine.stale_button") in out.text and "第 2 项" in out.text
    await chat.tap(-1)
    await chat.say("x")
    review = await chat.tap(0)
    assert "劳动关系 2 分" in review.text and "工资待遇" not in review.text


async def test_an_english_complaint_by_typed_words(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "en", language_hint="en")
    out = await chat.say("complain")
    assert "Not kept: who you are" in out.text
    await chat.say("start")
    await chat.say("美团")
    await chat.say("Safety")
    await chat.say("No ratings")
    await chat.say("The station manager docks 50 yuan a day.")
    review = await chat.say("No pictures, next")
    assert "About: 美团" in review.text and "Ratings: none" in review.text
    sent = await chat.say("Send anonymously")
    assert receipt_of(sent) and "shown only this once" in sent.text


async def test_not_now_and_start_over(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "n")
    await chat.say("投诉")
    assert t("complain.left") in (await chat.tap(t("complain.not_now"))).text
    assert (await step_of(app, "console:n"))[0] == "menu"
    await chat.say("投诉")
    await chat.tap(0)
    await chat.say("美团")
    await chat.tap(0)
    await chat.tap(t("complain.skip_all"))
    await chat.say("x")
    await chat.tap(0)
    out = await chat.tap(t("complain.start_over"))
    assert out.text.startswith("您要反映的是哪家")


# -- garbage, the step kept ----------------------------------------------------------------------------------------
def _garbage(chat: Chat, tmp_path: Path) -> dict[str, object]:
    (tmp_path / "g.jpg").write_bytes(jpeg_with_gps())
    return {
        "empty": chat.incoming(Kind.TEXT, text=""),
        "huge": chat.incoming(Kind.TEXT, text="长" * 5000),
        "sticker": chat.incoming(Kind.OTHER),
        "photo": chat.incoming(Kind.PHOTO, media=Media(str(tmp_path / "g.jpg"))),
    }


async def _at(chat: Chat, step: str) -> None:
    await chat.say("投诉")
    if step == "intro":
        return
    await chat.tap(0)
    if step == "target":
        return
    await chat.say("美团")
    if step == "category":
        return
    await chat.tap(0)
    if step == "rate":
        return
    await chat.tap(-1)  # no ratings
    if step == "description":
        return
    await chat.say(SECRET_TEXT)
    if step == "pictures":
        return
    await chat.tap(0)


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize("step", ["intro", "target", "category", "rate", "description", "review"])
async def test_garbage_at_every_step_keeps_the_step(bot, tmp_path: Path, step: str, lang: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, f"g-{step}-{lang}", language_hint=lang)
    await _at(chat, step)
    for name, incoming in _garbage(chat, tmp_path).items():
        if step == "description" and name == "empty":
            continue  # below: an empty description is its own answer
        out = await chat.send(incoming)
        assert (await step_of(app, chat.incoming(Kind.TEXT).user_key)) == ("complain", step), (name, out.text)
        assert out.text and "Traceback" not in out.text
        assert t("engine.sorry", lang) not in out.text, name
        if lang == "en":
            said = out.text.replace("美团", "").replace(SECRET_TEXT, "")
            assert not re.search(r"[\u4e00-\u9fff]{4}", said), (name, out.text)
    assert await count(app, complaints) == 0


async def test_the_particular_garbage_of_each_step(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "p")
    await _at(chat, "target")
    assert t("complain.unknown_target") in (await chat.say("拼多多")).text
    await chat.say("美团")
    assert t("complain.choose_category") in (await chat.say("我也不知道")).text
    await chat.tap(0)
    assert t("complain.bad_score") in (await chat.say("9")).text
    assert t("complain.bad_score") in (await chat.say("0")).text
    assert t("complain.bad_score") in (await chat.say("五星好评")).text
    assert (await step_of(app, "console:p")) == ("complain", "rate")
    await chat.tap(t("complain.skip_all"))
    assert t("complain.description_empty") in (await chat.say("   ")).text
    most = service.complaint_settings(app).max_description
    long = await chat.say("长" * (most + 1))
    assert t("complain.description_long", got=most + 1, most=most) in long.text
    assert (await step_of(app, "console:p")) == ("complain", "description")
    await chat.say("长" * most)  # just within
    assert t("complain.pictures_hint") in (await chat.say("照片没有")).text
    assert (await step_of(app, "console:p")) == ("complain", "pictures")
    await chat.tap(0)
    assert t("complain.review_choose") in (await chat.say("？？")).text.replace("?", "")


async def test_english_garbage_is_answered_in_english(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "ge", language_hint="en")
    await _at(chat, "target")
    assert t("complain.unknown_target", "en") in (await chat.say("Pinduoduo")).text
    await chat.say("美团")
    await chat.tap(0)
    assert t("complain.bad_score", "en") in (await chat.say("9")).text


# -- pictures ---------------------------------------------------------------------------------------------------------
async def test_pictures_are_stripped_stamped_by_day_and_pdfs_refused(bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "pic")
    await _at(chat, "pictures")
    assert "可能让人认出您" in chat.last.text
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_with_gps())
    (tmp_path / "doc.pdf").write_bytes(pdf())
    refused = await chat.send(chat.incoming(Kind.DOCUMENT, media=Media(str(tmp_path / "doc.pdf"))))
    assert t("complain.pictures_only") in refused.text
    for n in range(1, 5):
        out = await chat.send(chat.incoming(Kind.PHOTO, media=Media(str(photo))))
        assert t("complain.picture_received", count=n, most=4) in out.text
    out = await chat.send(chat.incoming(Kind.PHOTO, media=Media(str(photo))))
    assert t("complain.too_many_pictures", most=4) in out.text
    await chat.tap(0)
    code = receipt_of(await chat.tap(t("complain.send")))

    async with app.db.transaction() as tx:
        found = await service.by_receipt(app, tx, code)
        assert found is not None
        kept = await service.pictures(app, tx, found.id)
        rows = (await tx.conn.execute(select(media).where(media.c.id.in_(kept)))).all()
        assert (await tx.conn.execute(select(func.count()).select_from(media))).scalar_one() == 4
    assert len(rows) == 4
    for row in rows:
        assert (row.created_at.hour, row.created_at.minute, row.created_at.second) == (0, 0, 0)
        with Image.open(io.BytesIO(path_of(app.settings.media_path(), row.sha256).read_bytes())) as img:
            assert not dict(img.getexif()) and GPS_IFD not in img.getexif() and "comment" not in img.info


# -- following up ---------------------------------------------------------------------------------------------
async def test_the_thread_both_ways_and_nothing_in_the_outbox(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    await join(Chat(dispatcher, "worker"))  # a member: the one who could be sent something
    before = await count(app, outbox)
    worker = Chat(dispatcher, "worker")
    code = await complain(worker, ratings=(3, 3))

    out = await worker.say("查询进度")
    assert out.text == t("track.ask_code")
    spaced = f"{code[:4]}-{code[4:8]} {code[8:12]}\u3000{code[12:]}"  # as people copy it
    status = await worker.say(spaced)
    assert "状态：已收到，等待处理" in status.text and "工会还没有回复" in status.text
    await worker.tap(t("track.add"))
    assert t("track.added") in (await worker.say("补充：是上周三晚上")).text
    await worker.tap(t("track.done"))

    async with app.db.transaction() as tx:
        found = await service.by_receipt(app, tx, code)
        assert found is not None
        await service.route(app, tx, found.id, "legal", service.local_today(app))
        await service.reply(app, tx, found.id, "我们已联系站点，请保留扣款截图。", service.local_today(app))

    await worker.command("/track")
    status = await worker.say(code)
    assert "状态：工会已答复" in status.text
    assert (
        "您补充：\n补充：是上周三晚上" in status.text and "工会回复：\n我们已联系站点，请保留扣款截图。" in status.text
    )
    await worker.tap(t("track.add"))
    await worker.say("好的，截图已经留着了")
    async with app.db.transaction() as tx:
        found = await service.by_receipt(app, tx, code)
        assert found is not None and found.status == "routed"  # back with the team: there is something new
        authors = [m.author for m in await service.thread(app, tx, found.id)]
        await service.close(app, tx, found.id, "resolved", service.local_today(app))
    assert authors == ["worker", "union", "worker"]
    assert await count(app, complaint_messages) == 3

    await worker.tap(t("track.back") if t("track.back") in worker.labels() else t("track.done"))
    await worker.say("查询进度")
    closed = await worker.say(code)
    assert "已办结（问题已解决）" in closed.text and worker.labels() == [t("track.done")]
    assert await count(app, outbox) == before


async def test_english_follow_up(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "fe", language_hint="en")
    code = await complain(chat, "Deductions again", way="complain")
    await chat.say("track")
    out = await chat.say(code)
    assert "Status: received, waiting to be handled" in out.text and "No reply from the union yet" in out.text


async def test_garbage_while_following_up(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, "tg")
    code = await complain(chat)
    await chat.say("查询进度")
    assert t("track.code_words") in (await chat.send(chat.incoming(Kind.OTHER))).text
    assert t("track.not_a_code") in (await chat.say("12345")).text
    assert t("track.not_a_code") in (await chat.say("我的码丢了")).text
    assert t("engine.too_long") in (await chat.say("1" * 5000)).text
    assert (await step_of(app, "console:tg")) == ("track", "code")
    await chat.say(code)
    assert t("track.thread_choose") in (await chat.say("啥")).text
    await chat.tap(t("track.add"))
    assert t("track.add_words") in (await chat.say("")).text
    assert t("track.add_long", got=1001, most=1000) in (await chat.say("长" * 1001)).text
    assert (await step_of(app, "console:tg")) == ("track", "add")
    assert "状态" in (await chat.tap(t("track.back"))).text


# -- wrong codes -----------------------------------------------------------------------------------------------------
def _wrong(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


async def test_five_wrong_codes_then_a_pause_even_for_the_right_one(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    clock = [app.now()]
    app.now = lambda: clock[0]
    chat = Chat(dispatcher, "guesser")
    code = await complain(chat)
    await chat.say("查询进度")
    for left in (4, 3, 2, 1):
        assert t("track.wrong_code", left=left) in (await chat.say(_wrong(code))).text
    assert t("track.too_many") in (await chat.say(_wrong(code))).text
    refused = await chat.say(code)
    assert t("track.too_many") in refused.text and "状态" not in refused.text
    assert (await step_of(app, "console:guesser")) == ("track", "code")
    # Someone else is not held up by this one's mistakes.
    other = Chat(dispatcher, "other")
    await other.say("查询进度")
    assert "状态" in (await other.say(code)).text
    # Malformed input is no guess and counts for nothing; the pause ends with its window.
    clock[0] += timedelta(minutes=16)
    assert "状态" in (await chat.say(code)).text


async def test_the_overall_limit_stops_a_crowd(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    code = await complain(Chat(dispatcher, "author"))
    app.receipt_guard = ReceiptGuard(per_tag=5, overall=6)
    for n in range(3):  # three callers, two wrong codes each: none near their own limit
        chat = Chat(dispatcher, f"crowd{n}")
        await chat.say("查询进度")
        await chat.say(_wrong(code))
        await chat.say(_wrong(code))
    late = Chat(dispatcher, "late")
    await late.say("查询进度")
    out = await late.say(code)
    assert t("track.too_many") in out.text and "状态" not in out.text


async def test_a_malformed_code_is_not_counted(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    chat = Chat(dispatcher, "typo")
    code = await complain(chat)
    await chat.say("查询进度")
    for _ in range(10):
        await chat.say("1234")
    assert "状态" in (await chat.say(code)).text
