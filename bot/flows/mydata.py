"""我的信息 (everything held about me) and 退出工会 (leave, with my data deleted)."""

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.flows.notices import set_notices
from bot.services.membership import held_data, leave

# To someone we hold nothing about, "nothing is held" is the true answer, not a refusal.
_MEMBERS = Access.members(refusal="mydata.nothing_held")
mydata = Flow("mydata", commands=("mydata",), words=("我的信息", "my data"), menu_label="menu.mydata", access=_MEMBERS)
leaving = Flow("leave", commands=("leave",), words=("退出工会", "退会", "leave the union"), access=_MEMBERS)


@mydata.start
async def start_mydata(turn: Turn, payload: str) -> None:
    turn.goto("view")


@mydata.ask("view")
async def ask_view(turn: Turn) -> None:
    member = await turn.member()
    if member is None:  # only when an error answer re-asks after leaving; the next message goes home
        turn.say("mydata.nothing_held")
        turn.finish()
        return
    app = turn.app
    held = await held_data(turn.tx, app.keyring, app.profile, member, turn.lang)
    turn.say("mydata.held", **held, notices_muted=member.notices_muted)
    turn.say("mydata.phone_changed")
    turn.button(T("mydata.back"), "back")
    toggle = "unmute" if member.notices_muted else "mute"
    turn.button(T(f"mydata.{toggle}"), toggle)
    turn.button(T("mydata.leave"), "leave")


@mydata.on("view")
async def on_view(turn: Turn) -> None:
    if turn.choice == "leave":
        await turn.begin("leave")
    elif turn.choice == "back":
        turn.finish()
    elif turn.choice in ("mute", "unmute"):
        await set_notices(turn, turn.choice == "mute")
        turn.repeat = True  # shown again, with the setting as it is now
    else:
        turn.retry("engine.choose_option")


@leaving.start
async def start_leave(turn: Turn, payload: str) -> None:
    turn.goto("confirm")


@leaving.ask("confirm")
async def ask_confirm(turn: Turn) -> None:
    turn.say("mydata.leave_confirm", union=turn.app.profile.name(turn.lang))
    turn.button(T("mydata.leave_yes"), "yes")
    turn.button(T("mydata.leave_no"), "no")


@leaving.on("confirm")
async def on_confirm(turn: Turn) -> None:
    member = await turn.member()
    if turn.choice == "no" or member is None:
        turn.say("mydata.leave_kept")
        turn.finish()
    elif turn.choice == "yes":
        reference = await leave(turn.tx, member, turn.now)
        turn.know_member(None)
        turn.say("mydata.left", reference=reference)
        turn.finish()
        turn.forget_session = True
    else:
        turn.retry("engine.choose_option")
