"""Every conversation the bot has, in main-menu order."""

from bot.engine.flow import Flow
from bot.flows import card, join, menu, mydata, staff, whoami


def all_flows() -> dict[str, Flow]:
    flows = [menu.flow, join.flow, card.flow, mydata.mydata, mydata.leaving, staff.flow, whoami.flow]
    return {f.name: f for f in flows}
