"""The staff menu: for identities added with `gigunion staff add`, listing the tools of the roles each
staffer holds (admin holds them all).

A later tool (claims review, complaints triage, consultation slots, broadcasts) is a flow of its own
that declares `access=Access.staff("claims", tool="claims.menu_label")`: it appears here for those
roles, with nothing to change in this module. Verifying a membership card (every role) and the staff
list (admin) are steps of this flow, guarded the same way at every message.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.access import Access, staff_tools
from bot.engine.flow import Flow, Turn
from bot.engine.messages import T
from bot.engine.paging import Item, Pager
from bot.services.membership import local_date, verify_card
from storage.staff import ADMIN, Staffer

flow = Flow(
    "staff",
    commands=("staff",),
    words=("工作人员", "staff"),
    menu_label="menu.staff",
    access=Access.staff(),
)
_OPEN, _STEP = "open:", "step:"


@dataclass(frozen=True)
class StepTool:
    """A tool that is a step of this flow rather than a flow of its own."""

    step: str
    label: str
    access: Access


_VERIFY = StepTool("verify", "staff.verify_card", Access.staff())
_TEAM = StepTool("team", "staff.team", Access.staff(ADMIN))
STEP_TOOLS = {t.step: t for t in (_VERIFY, _TEAM)}
team_pager = Pager("team")


def tool_buttons(turn: Turn, staffer: Staffer) -> list[tuple[str, str]]:
    """(label key, payload) of every tool this staffer may use, in menu order."""
    buttons = [(_VERIFY.label, _STEP + _VERIFY.step)]
    buttons += [(f.access.tool or "", _OPEN + f.name) for f in staff_tools(turn.app.flows, staffer)]
    if _TEAM.access.admits_staffer(staffer):
        buttons.append((_TEAM.label, _STEP + _TEAM.step))
    return buttons


async def _still_may(turn: Turn, tool: StepTool) -> bool:
    """At every message of a step tool: a staffer whose role changed meanwhile goes back to the menu."""
    if tool.access.admits_staffer(await turn.staffer()):
        return True
    await tool.access.stop(turn)
    turn.goto("main")
    return False


@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.goto("main")


@flow.ask("main")
async def ask_main(turn: Turn) -> None:
    staffer = await turn.staffer()
    if staffer is None:  # only when an error answer re-asks after a removal; the next message goes home
        turn.say("roles.staff_removed")
        return
    members = await turn.tx.members.count()
    turn.say("staff.menu", name=staffer.name, roles=sorted(staffer.roles), members=members)
    for label, payload in tool_buttons(turn, staffer):
        turn.button(T(label), payload)
    turn.button(T("staff.done"), "done")


@flow.on("main")
async def on_main(turn: Turn) -> None:
    choice = turn.choice or ""
    if choice.startswith(_OPEN) and choice[len(_OPEN) :] in turn.app.flows:
        await turn.begin(choice[len(_OPEN) :])  # which checks the tool's roles again
    elif choice.startswith(_STEP) and (tool := STEP_TOOLS.get(choice[len(_STEP) :])):
        if await _still_may(turn, tool):
            turn.goto(tool.step)
    elif choice == "done":
        turn.finish()
    else:
        turn.retry("engine.choose_option")


# -- verifying a membership card --------------------------------------------------------------------
@flow.ask("verify")
async def ask_verify(turn: Turn) -> None:
    turn.say("staff.ask_code")
    turn.button(T("staff.back"), "back")


@flow.on("verify")
async def on_verify(turn: Turn) -> None:
    if turn.choice == "back":
        turn.goto("main")
        return
    if not await _still_may(turn, _VERIFY):
        return
    check = await verify_card(turn.tx, turn.app.keyring, turn.app.profile, turn.text)
    if check.genuine:
        await turn.tx.audit.record(turn.now, turn.user_key, "card.verified", check.number)
        turn.retry("staff.card_genuine", **check.__dict__)
    else:
        turn.retry("staff.card_not_genuine")


# -- the staff list (admin) ---------------------------------------------------------------------------
@flow.ask("team")
async def ask_team(turn: Turn) -> None:
    team = await turn.tx.staff.all()
    turn.say("staff.team_intro", count=len(team))
    items = [Item(str(s.id), T("staff.team_item", name=s.name, roles=sorted(s.roles))) for s in team]
    team_pager.show(turn, items)
    turn.button(T("staff.back"), "back")


@flow.on("team")
async def on_team(turn: Turn) -> None:
    if not await _still_may(turn, _TEAM):
        return
    if turn.choice == "back":
        turn.goto("main")
        return
    picked = team_pager.picked(turn)
    if picked is None:
        return
    one = next((s for s in await turn.tx.staff.all() if str(s.id) == picked), None)
    if one is None:  # removed since the list was shown
        turn.retry("staff.team_gone")
        return
    added = local_date(turn.app.profile, one.added_at)
    turn.retry("staff.team_detail", name=one.name, roles=sorted(one.roles), user_key=one.user_key, added=added)
