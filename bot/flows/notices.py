"""Turning the union's broadcast notices off (关闭通知, /mute) and on again (打开通知, /unmute).

Like 人工 or 帮助, these work from anywhere and leave the conversation where it was (`Flow(aside=True)`):
a rider who mutes notices halfway through a claim carries on with the claim. A muted member still gets
every message about their own claim, booking or event sign-up: muting only takes them out of
broadcasts' audiences.

Within an anonymous flow (匿名投诉) the words change nothing: muting names the member, which may not
happen there. The conversation is kept, and they are asked to say it again once the complaint is sent.
"""

from __future__ import annotations

from bot.engine.flow import Flow, Turn

MUTE_WORDS = ("关闭通知", "不要通知", "别发通知", "mute", "mute notices")
UNMUTE_WORDS = ("打开通知", "开启通知", "恢复通知", "unmute", "unmute notices")
mute = Flow("notices_off", commands=("mute",), words=MUTE_WORDS, aside=True)
unmute = Flow("notices_on", commands=("unmute",), words=UNMUTE_WORDS, aside=True)


async def set_notices(turn: Turn, muted: bool) -> None:
    """Mute or unmute the member's notices and say so; to someone who is not a member, that they get none."""
    member = await turn.member()
    if member is None:
        turn.say("notices.not_member")
        return
    was = member.notices_muted
    updated = await turn.tx.members.set_muted(member.id, muted)
    turn.know_member(updated)
    if updated is None:  # left the union on another channel since this turn began
        turn.say("notices.not_member")
    elif muted:
        turn.say("notices.muted", already=was)
    else:
        turn.say("notices.unmuted", already=not was)


async def switch(turn: Turn, muted: bool) -> None:
    if turn.anonymous:
        turn.say("notices.not_while_anonymous")
        return
    await set_notices(turn, muted)
    if turn.session.flow not in (None, "menu"):
        turn.say("notices.carry_on")


@mute.start
async def start_mute(turn: Turn, payload: str) -> None:
    await switch(turn, True)


@unmute.start
async def start_unmute(turn: Turn, payload: str) -> None:
    await switch(turn, False)
