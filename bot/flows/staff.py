"""The staff menu: only for identities added with `gigunion staff add`. Later issues add their tools."""

from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.services.membership import verify_card


async def is_staff(turn: Turn) -> bool:
    return await turn.staffer() is not None


flow = Flow("staff", commands=("staff",), words=("工作人员", "staff"), menu_label="menu.staff", visible=is_staff)


@flow.start
async def start(turn: Turn, payload: str) -> None:
    if not await is_staff(turn):
        turn.say("staff.not_staff")
        turn.finish()
    else:
        turn.goto("main")


@flow.ask("main")
async def ask_main(turn: Turn) -> None:
    staffer = await turn.staffer()
    assert staffer is not None
    turn.say("staff.menu", name=staffer.name, role=staffer.role, members=await turn.tx.members.count())
    turn.button(T("staff.verify_card"), "verify")
    turn.button(T("staff.done"), "done")


@flow.on("main")
async def on_main(turn: Turn) -> None:
    if turn.choice == "verify":
        turn.goto("verify")
    elif turn.choice == "done":
        turn.finish()
    else:
        turn.retry("engine.choose_option")


@flow.ask("verify")
async def ask_verify(turn: Turn) -> None:
    turn.say("staff.ask_code")
    turn.button(T("staff.back"), "back")


@flow.on("verify")
async def on_verify(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("main")
        return
    if not await is_staff(turn):  # removed while in the middle of this
        turn.say("staff.not_staff")
        turn.finish()
        return
    check = await verify_card(turn.tx, turn.app.keyring, turn.app.profile, turn.text)
    if check.genuine:
        await turn.tx.audit.record(turn.now, turn.user_key, "card.verified", check.number)
        turn.retry("staff.card_genuine", **check.__dict__)
    else:
        turn.retry("staff.card_not_genuine")
