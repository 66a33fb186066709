"""Who may enter which flow: the menus built from access, refusals, and the guard at every message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.locale import Locale
from bot.services.membership import leave
from storage.schema import audit_log
from storage.staff import ROLES
from tests.chat import Chat, join

TOOL_ROLES = [r for r in ROLES if r != "admin"]
ROLE_ZH = {
    "admin": "管理员",
    "claims": "理赔专员",
    "counsellor": "咨询专员",
    "complaints": "投诉受理专员",
    "broadcaster": "通知发布员",
}
REFUSED = "只对工会工作人员开放"
STAFF_MENU, VERIFY, TEAM, DONE = "工作人员菜单", "核验会员证", "工作人员名单", "退出工作人员菜单"


def tool_flow(role: str) -> Flow:
    """A staff tool as a later issue will declare one: its roles, its label, and one step."""
    flow = Flow(f"tool_{role}", commands=(f"tool{role}",), access=Access.staff(role, tool=f"roles.{role}"))

    @flow.start
    async def start(turn: Turn, payload: str) -> None:
        turn.goto("work")

    @flow.ask("work")
    async def ask_work(turn: Turn) -> None:
        turn.say("staff.ask_code")  # any sentence will do; what matters is reaching this step
        turn.button(T("staff.back"), "back")

    @flow.on("work")
    async def on_work(turn: Turn) -> None:
        await turn.tx.audit.record(turn.now, turn.user_key, f"tool.{role}.used", None)
        turn.retry()

    return flow


@pytest.fixture
async def tools(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    # The engine is tested with stand-in tools alone; the real ones (claims review…) test themselves.
    for name in [n for n, f in app.flows.items() if f.access.tool]:
        del app.flows[name]
    for role in TOOL_ROLES:
        flow = tool_flow(role)
        app.flows[flow.name] = flow
    return app, dispatcher


async def staffer(bot, user: str, role: str, name: str = "李老师") -> Chat:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with app.db.transaction() as tx:
        await tx.staff.add(f"telegram:{user}", role, name, app.now())
    return Chat(dispatcher, channel="telegram", user=user)


async def uses(app, action: str) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        query = select(func.count()).select_from(audit_log).where(audit_log.c.action == action)
        return (await tx.conn.execute(query)).scalar_one()


@pytest.mark.parametrize("role", TOOL_ROLES)
async def test_each_role_sees_exactly_its_tools(tools, role: str) -> None:  # type: ignore[no-untyped-def]
    chat = await staffer(tools, "1", role)
    menu = await chat.command("/staff")
    assert chat.labels() == [VERIFY, ROLE_ZH[role], DONE]
    assert f"李老师，您好（{ROLE_ZH[role]}）" in menu.text
    await chat.tap(ROLE_ZH[role])
    await chat.say("anything")
    assert await uses(tools[0], f"tool.{role}.used") == 1


async def test_admin_sees_every_tool_and_the_staff_list(tools) -> None:  # type: ignore[no-untyped-def]
    chat = await staffer(tools, "1", "admin")
    menu = await chat.command("/staff")
    assert chat.labels() == [VERIFY, "理赔专员", "咨询专员", "投诉受理专员", "通知发布员", TEAM, DONE]
    assert "（管理员）" in menu.text
    for role in TOOL_ROLES:  # admin may do everything, by command as well as from the menu
        await chat.command(f"/tool{role}")
        await chat.say("x")
        assert await uses(tools[0], f"tool.{role}.used") == 1


async def test_a_staffer_without_the_role_is_refused_and_told_which_role(tools) -> None:  # type: ignore[no-untyped-def]
    chat = await staffer(tools, "1", "counsellor")
    out = await chat.command("/toolclaims")
    assert "理赔专员" in out.text and "没有开通" in out.text
    assert "加入工会" in chat.labels()  # back at the main menu
    await chat.say("x")
    assert await uses(tools[0], "tool.claims.used") == 0


async def test_a_member_never_sees_the_staff_menu_and_is_refused_politely(tools) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = tools
    member = Chat(dispatcher)
    await join(member)
    menu = await member.command("/menu")
    assert STAFF_MENU not in member.labels() and "我的会员证" in member.labels()
    assert menu.text
    for attempt in (member.command("/staff"), member.say("工作人员"), member.command("/toolclaims")):
        out = await attempt
        assert REFUSED in out.text
        # Nothing about what the tool is: no role names, no tool names.
        assert not any(word in out.text for word in (*ROLE_ZH.values(), VERIFY, "核验"))
        assert STAFF_MENU not in member.labels() and "我的会员证" in member.labels()
    english = Chat(dispatcher, user="bob", language_hint="en")
    assert (await english.command("/staff")).text.startswith("This is for union staff only.")


async def test_main_menu_is_built_from_access(tools) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = tools
    stranger = Chat(dispatcher, user="nobody")
    await stranger.command("/menu")
    assert stranger.labels() == ["加入工会", "匿名投诉/点评", "English"]  # complaints are for anyone
    member = Chat(dispatcher)
    await join(member)
    await member.command("/menu")
    services = ["理赔申请", "我的理赔", "预约咨询", "我的预约", "活动报名", "匿名投诉/点评"]
    assert member.labels() == ["我的会员证", "我的信息", *services, "English"]
    staff = await staffer(tools, "1", "claims")
    await staff.command("/menu")
    assert staff.labels() == ["加入工会", "匿名投诉/点评", STAFF_MENU, "English"]  # tools live in the staff menu only
    refused = await stranger.command("/card")
    assert "还不是会员" in refused.text and stranger.labels()[0] == "加入工会"


async def test_a_staffer_removed_mid_flow_is_stopped_at_the_next_message(tools) -> None:  # type: ignore[no-untyped-def]
    app, _ = tools
    chat = await staffer(tools, "1", "claims")
    await chat.command("/staff")
    await chat.tap(VERIFY)
    async with app.db.transaction() as tx:
        assert await tx.staff.remove("telegram:1")
    out = await chat.say("AB12-CD34")
    assert "权限已经取消" in out.text and "会员证有效" not in out.text and "查不到" not in out.text
    assert STAFF_MENU not in chat.labels() and "加入工会" in chat.labels()
    assert await uses(app, "card.verified") == 0
    # The same in a tool flow of its own, and after a role change instead of a removal.
    chat = await staffer(tools, "2", "claims")
    await chat.command("/toolclaims")
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:2", "counsellor", "王老师", app.now())
    out = await chat.say("x")
    assert "权限有变动" in out.text and "理赔专员" in out.text
    assert await uses(app, "tool.claims.used") == 0


async def test_an_admin_made_claims_officer_in_the_staff_list_goes_back_to_the_staff_menu(tools) -> None:  # type: ignore[no-untyped-def]
    app, _ = tools
    chat = await staffer(tools, "1", "admin")
    await chat.command("/staff")
    await chat.tap(TEAM)
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:1", "claims", "李老师", app.now())
    out = await chat.tap("李老师")
    assert "权限有变动" in out.text and "管理员" in out.text
    assert chat.labels() == [VERIFY, "理赔专员", DONE]


async def test_a_member_who_left_mid_flow_is_stopped_at_the_next_message(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await join(chat)
    await chat.say("我的信息")
    assert "我们保存的关于您的全部信息" in chat.last.text
    # Membership ended by something that kept this session (leaving itself deletes every session of
    # the member, so its next message meets a stale button instead; that is checked below).
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key("console:alice")
        await tx.members.delete(member.id)
    out = await chat.tap("退出工会")
    assert "已经不是工会会员" in out.text and chat.labels()[0] == "加入工会"
    await join(chat, phone="13900139000")
    await chat.say("我的信息")
    async with app.db.transaction() as tx:
        await leave(tx, await tx.members.by_user_key("console:alice"), app.now())
    out = await chat.tap("退出工会")
    assert "已经不是工会会员" not in out.text and chat.labels()[0] == "加入工会"
    assert "保存的关于您" not in out.text


def test_a_staffer_removed_by_the_cli_is_stopped_at_the_next_message(tmp_path, make_settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from bot.runtime import running_bot

    settings = make_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")}
    env |= {
        "GIGUNION_DATABASE_URL": settings.database_url,
        "GIGUNION_SECRET_KEY": "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    }

    async def until_removed() -> tuple[str, list[str]]:
        async with running_bot(settings) as (app, dispatcher):
            chat = await staffer((app, dispatcher), "7", "complaints")
            await chat.command("/staff")
            await chat.tap(VERIFY)
            removed = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "bot", "staff", "remove", "telegram:7"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert removed.returncode == 0, removed.stderr
            out = await chat.say("AB12-CD34")
            return out.text, chat.labels()

    text, labels = asyncio.run(until_removed())
    assert "权限已经取消" in text and STAFF_MENU not in labels


@pytest.mark.parametrize(
    ("lang", "names"),
    [
        ("zh_CN", ["管理员", "理赔专员", "咨询专员", "投诉受理专员", "通知发布员"]),
        ("en", ["Administrator", "Claims officer", "Counsellor", "Complaints officer", "Broadcaster"]),
    ],
)
def test_role_names_in_each_language(lang: str, names: list[str]) -> None:
    locale = Locale()
    assert [locale.text(lang, f"roles.{r}") for r in ROLES] == names
    menu = locale.text(lang, "staff.menu", name="Li", roles=["claims"], members=3)
    assert names[1] in menu and "claims" not in menu


async def test_role_names_in_the_english_staff_menu(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:5", "broadcaster", "Li", app.now())
    chat = Chat(dispatcher, channel="telegram", user="5", language_hint="en")
    out = await chat.command("/staff")
    assert "Hello Li (Broadcaster)" in out.text
    tools = ["Verify a membership card", "Event check-in", "Send a notice", "My notices"]
    assert chat.labels() == [*tools, "Leave the staff menu"]


def test_declarations_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="boss"):
        Access.staff("boss")
    keys = Locale().keys("zh_CN")
    for key in ("roles.members_only", "roles.staff_only", "roles.not_your_role", "roles.staff_removed"):
        assert key in keys
    assert {"roles.role_changed", "roles.member_gone"} <= keys
