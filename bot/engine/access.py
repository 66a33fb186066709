"""Who may be in a flow: anyone, members, or staff holding one of some roles (admin holds them all).

A flow declares it once (`Flow(..., access=Access.staff("claims"))`) and the engine asks on entry
(`Turn.begin`) and again at every message while the user is in it, so a staffer removed or a member who
left on another channel is stopped at their next message rather than at the end of the flow. The main
menu and the staff menu are built from the same declarations, so a button is never shown for a flow
that would refuse the person who sees it.

A refusal tells a non-staffer only that a tool is for union staff, never what the tool does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from storage.staff import ADMIN, ROLES

if TYPE_CHECKING:
    from bot.engine.flow import Flow, Turn
    from storage.staff import Staffer


class Who(StrEnum):
    ANYONE = "anyone"
    MEMBERS = "members"
    STAFF = "staff"


@dataclass(frozen=True)
class Access:
    who: Who = Who.ANYONE
    roles: frozenset[str] = frozenset()  # staff: any one of these; empty means every staff role
    tool: str | None = None  # staff: label key of the flow's button in the staff menu
    refusal: str | None = None  # said when entry is refused, instead of the default for `who`

    @classmethod
    def anyone(cls) -> Access:
        return ANYONE

    @classmethod
    def members(cls, *, refusal: str | None = None) -> Access:
        return cls(Who.MEMBERS, refusal=refusal)

    @classmethod
    def staff(cls, *roles: str, tool: str | None = None, refusal: str | None = None) -> Access:
        """Staff holding any of `roles` (none given: any staffer); `tool` lists the flow in the staff menu."""
        unknown = set(roles) - set(ROLES)
        if unknown:  # a typo in a declaration fails when the flows are imported, not in a staffer's chat
            raise ValueError(f"unknown staff roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
        return cls(Who.STAFF, frozenset(roles), tool, refusal)

    def admits_staffer(self, staffer: Staffer | None) -> bool:
        if staffer is None:
            return False
        return not self.roles or bool(staffer.roles & (self.roles | {ADMIN}))

    async def admits(self, turn: Turn) -> bool:
        if self.who is Who.ANYONE:
            return True
        if self.who is Who.MEMBERS:
            return await turn.member() is not None
        return self.admits_staffer(await turn.staffer())

    async def refuse(self, turn: Turn) -> None:
        """Say why entry was refused, in the user's language."""
        if self.refusal:
            turn.say(self.refusal)
        elif self.who is Who.MEMBERS:
            turn.say("roles.members_only")
        elif await turn.staffer() is None:
            turn.say("roles.staff_only")
        else:
            turn.say("roles.not_your_role", roles=sorted(self.roles))

    async def stop(self, turn: Turn) -> None:
        """Say why a flow the user was in has ended under them."""
        if self.who is Who.MEMBERS:
            turn.say("roles.member_gone")
        elif await turn.staffer() is None:
            turn.say("roles.staff_removed")
        else:
            turn.say("roles.role_changed", roles=sorted(self.roles))


ANYONE = Access()


async def still_admitted(turn: Turn) -> bool:
    """Whether the user may stay in the flow they are in; if not, says so (the caller goes home)."""
    flow: Flow | None = turn.app.flows.get(turn.session.flow or "")
    if flow is None or await flow.access.admits(turn):
        return True
    await flow.access.stop(turn)
    return False


def staff_tools(flows: dict[str, Flow], staffer: Staffer | None) -> list[Flow]:
    """The flows listed in the staff menu that this staffer may open, in flow order."""
    return [f for f in flows.values() if f.access.tool and f.access.admits_staffer(staffer)]
