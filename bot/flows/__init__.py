"""Every conversation the bot has, in main-menu order, checked at start-up for steps that do not exist."""

from bot.engine import substeps
from bot.engine.checks import check_flows
from bot.engine.flow import Flow
from bot.flows import (
    book,
    card,
    checkin,
    claim,
    claims_review,
    complain,
    complaints_desk,
    compose,
    counsellor,
    events,
    join,
    menu,
    my_bookings,
    my_claims,
    mydata,
    notices,
    report_desk,
    staff,
    track,
    whoami,
)


def all_flows() -> dict[str, Flow]:
    flows = [
        menu.flow,
        join.flow,
        card.flow,
        mydata.mydata,
        mydata.leaving,
        notices.mute,
        notices.unmute,
        claim.flow,
        my_claims.flow,
        book.flow,
        my_bookings.flow,
        my_bookings.replies,
        events.flow,
        complain.flow,
        track.flow,
        staff.flow,
        claims_review.flow,
        complaints_desk.flow,
        report_desk.flow,
        checkin.flow,
        counsellor.publish,
        counsellor.mine,
        compose.compose,
        compose.mine,
        whoami.flow,
    ]
    # Sub-steps: entered by `turn.call` from other flows, never from the menu.
    flows += [substeps.pick_date]
    named = {f.name: f for f in flows}
    check_flows(named)
    return named
