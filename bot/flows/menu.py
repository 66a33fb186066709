"""The main menu: where every conversation starts and returns."""

from bot.engine.flow import Flow, Turn
from bot.engine.messages import T

flow = Flow("menu")


@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.goto("main")


@flow.ask("main")
async def ask_main(turn: Turn) -> None:
    turn.say("menu.prompt")
    for other in turn.app.flows.values():
        if not other.menu_label or not await other.access.admits(turn):
            continue
        if other.visible is None or await other.visible(turn):  # e.g. joining, shown to non-members
            turn.button(T(other.menu_label), f"open:{other.name}")
    turn.button(T("menu.switch_language"), "lang")


@flow.on("main")
async def on_main(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice.startswith("open:") and choice[5:] in turn.app.flows:
        await turn.begin(choice[5:])
    elif choice == "lang":
        turn.switch_language()
    else:
        turn.retry("menu.not_understood")
