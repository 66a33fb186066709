"""A list too long for one message (claims to review, complaints, bookings, staff), a page at a time.

Each item is a button, then "previous" and "next", then a page indicator ("第 2/5 页"). It uses nothing
but buttons, so it works on every channel (WeChat shows them as numbered options). The page number
lives in the session under the pager's name; the step's `ask` shows the page, and its `on` handler asks
the pager what was pressed:

    staff_pager = Pager("staff")

    @flow.ask("list")
    async def ask_list(turn):
        staff_pager.show(turn, [Item(str(s.id), s.name) for s in await turn.tx.staff.all()])
        turn.button(T("staff.back"), "back")

    @flow.on("list")
    async def on_list(turn):
        if turn.choice == "back":          # the step's own buttons first
            ...
        elif (picked := staff_pager.picked(turn)) is not None:
            ...                            # the id of the item pressed; it may be gone since: check

A page move, or anything the pager does not understand, asks the same step again, on the page it moved
to or stayed on. The list may change between two messages: a page past the end shows the last page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.engine.messages import Label, T

if TYPE_CHECKING:
    from bot.engine.flow import Turn

PER_PAGE = 6
_ITEM, _PAGE = "item:", "page:"


@dataclass(frozen=True)
class Item:
    id: str  # what `picked` returns; keep it short (it rides in Telegram's 64-byte button data)
    label: Label


class Pager:
    def __init__(self, name: str, per_page: int = PER_PAGE) -> None:
        # Fewer than 5 makes a queue a chore to page through; more than 8 no longer fits a phone screen.
        if not 5 <= per_page <= 8:
            raise ValueError("a page holds 5 to 8 items")
        self.key = f"{name}_page"
        self.per_page = per_page

    def page(self, turn: Turn) -> int:
        """The page shown last (0-based), as stored in the session."""
        page = turn.data.get(self.key, 0)
        return page if isinstance(page, int) and page >= 0 else 0

    def show(self, turn: Turn, items: Sequence[Item]) -> None:
        """In an `ask`: the stored page of `items` as buttons, with the way to the other pages."""
        pages = max(1, -(-len(items) // self.per_page))
        page = min(self.page(turn), pages - 1)
        turn.data[self.key] = page
        for item in items[page * self.per_page : (page + 1) * self.per_page]:
            turn.button(item.label, _ITEM + item.id)
        if page > 0:
            turn.button(T("paging.previous"), f"{_PAGE}{page - 1}")
        if page < pages - 1:
            turn.button(T("paging.next"), f"{_PAGE}{page + 1}")
        if pages > 1:
            turn.say("paging.indicator", page=page + 1, pages=pages)

    def picked(self, turn: Turn) -> str | None:
        """In an `on` handler: the id of the item pressed. None when the user turned a page or sent
        something else; the same step is then asked again, on the page now current."""
        choice = turn.choice or ""
        if choice.startswith(_ITEM):
            return choice[len(_ITEM) :]
        # Pages are named by number, not "next": pressing an old "next" twice cannot skip a page.
        if choice.startswith(_PAGE) and choice[len(_PAGE) :].isdigit():
            turn.data[self.key] = int(choice[len(_PAGE) :])
            turn.retry()
        else:
            turn.retry("paging.choose")
        return None
