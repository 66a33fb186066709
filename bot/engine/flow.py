"""Flows are conversations made of named steps. Each step has an `ask` (what the bot says on
arriving there) and an `on` handler (what it does with the user's answer). A handler moves on with
`turn.goto`, stays with `turn.retry`, or ends with `turn.finish`; the dispatcher then asks the new
step, so a handler never repeats another step's prompt."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.engine.access import ANYONE, Access
from bot.engine.messages import Button, Incoming, Kind, Label, Reply, Request, T

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage import Tx
    from storage.members import Member
    from storage.sessions import Session
    from storage.staff import Staffer

Ask = Callable[["Turn"], Awaitable[None]]
Handle = Callable[["Turn"], Awaitable[None]]
Start = Callable[["Turn", str], Awaitable[None]]


@dataclass
class Flow:
    name: str
    # Ways in, besides the menu: slash commands (without "/") and whole-message words in any locale.
    commands: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    # Whole messages of a shape (a reference after a word: "取消预约 ZX7K2M9Q"), matched NFKC-folded and
    # casefolded; the entry reads `turn.text` for what was in them.
    patterns: tuple[re.Pattern[str], ...] = ()
    asks: dict[str, Ask] = field(default_factory=dict)
    handlers: dict[str, Handle] = field(default_factory=dict)
    entry: Start | None = None
    # Who may enter and stay (checked on entry and at every message); see bot/engine/access.py.
    access: Access = ANYONE
    # Shown in the main menu under this label key, to those `access` admits and `visible` says yes to.
    menu_label: str | None = None
    visible: Callable[[Turn], Awaitable[bool]] | None = None

    def ask(self, step: str) -> Callable[[Ask], Ask]:
        def register(fn: Ask) -> Ask:
            self.asks[step] = fn
            return fn

        return register

    def on(self, step: str) -> Callable[[Handle], Handle]:
        def register(fn: Handle) -> Handle:
            self.handlers[step] = fn
            return fn

        return register

    def start(self, fn: Start) -> Start:
        self.entry = fn
        return fn


class Turn:
    """One incoming message being handled: what was said, the session, an open transaction, and the
    reply being built."""

    def __init__(
        self,
        app: BotContext,
        tx: Tx,
        session: Session,
        incoming: Incoming,
        lang: str,
        now: datetime,
        *,
        member: Member | bool | None = False,  # False: not looked up yet
        staffer: Staffer | bool | None = False,
    ) -> None:
        self.app = app
        self.tx = tx
        self.session = session
        self.incoming = incoming
        self.lang = lang
        self.now = now
        self.reply = Reply()
        self.choice: str | None = None  # payload of the button pressed, or of the option typed
        self.moved = False
        self.repeat = False
        self.forget_session = False  # delete the session instead of saving it (nothing may be kept)
        self.returned: str | None = None  # the sub-flow whose `done` brought us back to this step
        self.result: Any = None  # and what it gave back
        self._member = member
        self._staffer = staffer

    # -- what the user sent -------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.incoming.text.strip() if self.incoming.kind is Kind.TEXT else ""

    @property
    def user_key(self) -> str:
        return self.incoming.user_key

    @property
    def data(self) -> dict[str, Any]:
        return self.session.data

    async def member(self) -> Member | None:
        if self._member is False:
            self._member = await self.tx.members.by_user_key(self.user_key)
        return self._member  # type: ignore[return-value]

    def know_member(self, member: Member | None) -> None:
        """The member this identity now reaches, after a flow enrolled, linked or removed them."""
        self._member = member

    async def staffer(self) -> Staffer | None:
        if self._staffer is False:
            self._staffer = await self.tx.staff.get(self.user_key)
        return self._staffer  # type: ignore[return-value]

    # -- building the reply ------------------------------------------------------------------------
    def say(self, key: str, **context: Any) -> None:
        self.reply.texts.append(T(key, **context))

    def button(self, label: Label, payload: str) -> None:
        self.reply.buttons.append(Button(label, payload))

    def request(self, what: Request) -> None:
        self.reply.requests.append(what)

    def image(self, png: bytes) -> None:
        self.reply.image = png

    def document(self, name: str, data: bytes) -> None:
        """A file sent with the reply (a calendar entry): a document on Telegram, a saved file on the console."""
        self.reply.document = (name, data)

    # -- where the conversation goes next ----------------------------------------------------------
    def goto(self, step: str, flow: str | None = None) -> None:
        self.session.flow = flow or self.session.flow
        self.session.step = step
        self.moved = True

    def retry(self, key: str | None = None, **context: Any) -> None:
        """Stay on this step: explain what was wrong, then ask again."""
        if key:
            self.say(key, **context)
        self.repeat = True

    def switch_language(self, lang: str | None = None) -> None:
        """To `lang`, or to the next language we speak; remembered, and the step is asked again in it."""
        langs = self.app.locale.languages
        self.session.lang = self.lang = lang or langs[(langs.index(self.lang) + 1) % len(langs)]
        self.retry("engine.language_set")

    def finish(self) -> None:
        """End this flow; the dispatcher returns the user to the main menu."""
        self.session.flow = None
        self.session.step = None
        self.session.data = {}
        self.moved = False

    async def begin(self, flow_name: str, payload: str = "") -> None:
        """Leave whatever flow the user was in and enter `flow_name` by its entry."""
        flow = self.app.flows[flow_name]
        if not await flow.access.admits(self):
            await flow.access.refuse(self)
            flow_name, flow = "menu", self.app.flows["menu"]
        if flow.entry is None:
            raise LookupError(f"flow {flow_name} has no entry")
        self.session.flow, self.session.step, self.session.data = flow_name, None, {}
        self.moved = True
        await flow.entry(self, payload)

    async def call(self, flow_name: str, then: str | None = None, **args: Any) -> None:
        """Enter the sub-flow `flow_name` with `args` as its data; its `done(value)` comes back to step
        `then` (this step by default), whose handler runs with `returned` and `result` set."""
        from bot.engine import substeps  # it imports this module

        await substeps.call(self, flow_name, then, args)

    async def done(self, value: Any = None) -> None:
        """Leave this sub-flow, giving `value` to the flow that called it (see `bot.engine.substeps`)."""
        from bot.engine import substeps

        await substeps.done(self, value)
