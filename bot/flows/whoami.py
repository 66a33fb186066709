"""/id: tells people their own account id, which staff need for `gigunion staff add`."""

from bot.engine.flow import Flow, Turn

flow = Flow("whoami", commands=("id", "whoami"))


@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.say("menu.whoami", user_key=turn.user_key)
    turn.finish()
