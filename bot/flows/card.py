"""The electronic membership card (我的会员证)."""

from bot.engine.access import Access
from bot.engine.flow import Flow, Turn
from bot.services.card_image import card_png
from bot.services.membership import card_context


async def is_member(turn: Turn) -> bool:
    return await turn.member() is not None


async def show_card(turn: Turn) -> None:
    member = await turn.member()
    assert member is not None
    turn.say("card.card", **card_context(member, turn.app.keyring, turn.app.profile, turn.lang))
    turn.image(card_png(member.card_code, member.member_number))


flow = Flow(
    "card",
    commands=("card",),
    words=("会员证", "我的会员证", "card", "my card"),
    menu_label="menu.card",
    access=Access.members(refusal="card.not_member"),
)


@flow.start
async def start(turn: Turn, payload: str) -> None:
    await show_card(turn)
    turn.finish()
