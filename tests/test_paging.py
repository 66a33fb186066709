"""The paged list, exercised end to end through the admin's staff list."""

from __future__ import annotations

import pytest

from bot.engine.paging import PER_PAGE, Pager
from bot.services.wechat_render import render
from tests.chat import Chat

NEXT, PREVIOUS, BACK = "下一页", "上一页", "返回"


@pytest.fixture
async def admin(bot):  # type: ignore[no-untyped-def]
    """An admin in the staff list, with 14 staff in all: pages of 6, 6 and 2."""
    app, dispatcher = bot
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:1", "admin", "Admin", app.now())
        for i in range(2, 15):
            await tx.staff.add(f"telegram:{i}", "claims", f"Staff{i:02d}", app.now())
    chat = Chat(dispatcher, channel="telegram", user="1")
    await chat.command("/staff")
    await chat.tap("工作人员名单")
    return app, chat


def names(chat: Chat) -> list[str]:
    return [label.split("（")[0] for label in chat.labels() if "（" in label]


async def test_next_and_previous_pages(admin) -> None:  # type: ignore[no-untyped-def]
    _, chat = admin
    first = chat.last
    assert "第 1/3 页" in first.text and "共有 14 位" in first.text
    assert names(chat) == ["Admin", *[f"Staff{i:02d}" for i in range(2, 7)]]
    assert chat.labels()[PER_PAGE:] == ["下一页 ➡️", BACK]  # no "previous" on the first page
    second = await chat.tap(NEXT)
    assert "第 2/3 页" in second.text and names(chat) == [f"Staff{i:02d}" for i in range(7, 13)]
    assert chat.labels()[PER_PAGE:] == ["⬅️ 上一页", "下一页 ➡️", BACK]
    third = await chat.tap(NEXT)
    assert "第 3/3 页" in third.text and names(chat) == ["Staff13", "Staff14"]
    assert chat.labels()[2:] == ["⬅️ 上一页", BACK]  # no "next" on the last page
    again = await chat.tap(PREVIOUS)
    assert "第 2/3 页" in again.text and names(chat)[0] == "Staff07"


async def test_pressing_an_item_gives_its_id_to_the_step(admin) -> None:  # type: ignore[no-untyped-def]
    _, chat = admin
    await chat.tap(NEXT)
    out = await chat.tap("Staff08")
    assert "Staff08" in out.text and "理赔专员" in out.text and "telegram:8" in out.text
    assert "第 2/3 页" in out.text  # and the list stays on the page it was on


async def test_garbage_keeps_the_page(admin) -> None:  # type: ignore[no-untyped-def]
    _, chat = admin
    await chat.tap(NEXT)
    before = chat.labels()
    for garbage in ("随便说点什么", "99", "0", "page:5"):
        out = await chat.say(garbage)
        assert "请从下面的选项里选一个" in out.text and "第 2/3 页" in out.text
        assert chat.labels() == before


async def test_a_stale_page_button_does_not_move_the_list(admin) -> None:  # type: ignore[no-untyped-def]
    _, chat = admin
    first = chat.last
    await chat.tap(NEXT)
    await chat.tap(NEXT)
    out = await chat.tap(NEXT, message=first)  # the first page's "next", pressed late
    assert "过期" in out.text and "第 3/3 页" in out.text


async def test_a_page_past_the_end_shows_the_last_page(admin) -> None:  # type: ignore[no-untyped-def]
    app, chat = admin
    await chat.tap(NEXT)
    await chat.tap(NEXT)
    async with app.db.transaction() as tx:  # the list shrinks to 7: two pages
        for i in range(8, 15):
            await tx.staff.remove(f"telegram:{i}")
    out = await chat.say("?")
    assert "第 2/2 页" in out.text and names(chat) == ["Staff07"]
    assert chat.labels()[1:] == ["⬅️ 上一页", BACK]


async def test_an_item_removed_meanwhile(admin) -> None:  # type: ignore[no-untyped-def]
    app, chat = admin
    async with app.db.transaction() as tx:
        await tx.staff.remove("telegram:3")
    out = await chat.tap("Staff03")
    assert "已经不在工作人员名单里" in out.text and "Staff03" not in names(chat)


async def test_wechat_numbers_the_pages_as_options(admin) -> None:  # type: ignore[no-untyped-def]
    app, chat = admin
    shown = render(chat.last, app.locale, "zh_CN").texts[0]
    assert "7 下一页" in shown and "8 返回" in shown
    out = await chat.say("7")  # what a WeChat user types for option 7
    assert "第 2/3 页" in out.text
    out = await chat.say("7")  # now "previous"
    assert "第 1/3 页" in out.text


def test_pages_hold_five_to_eight() -> None:
    assert Pager("x").per_page == 6
    assert Pager("x", 5).per_page == 5 and Pager("x", 8).per_page == 8
    for bad in (4, 9):
        with pytest.raises(ValueError):
            Pager("x", bad)
