"""Flows are conversations made of named steps. Each step has an `ask` (what the bot says on
arriving there) and an `on` handler (what it does with the user's answer). A handler moves on with
`turn.goto`, stays with `turn.retry`, or ends with `turn.finish`; the dispatcher then asks the new
step, so a handler never repeats another step's prompt.

A flow made with `anonymous=True` (匿名投诉) serves a person the bot must not be able to name: while the
conversation is in it (or in a sub-step it called), and while its code runs, `turn.member()`,
`turn.staffer()`, `turn.user_key` and the sender's fields of `turn.incoming` and `turn.session` raise
`AnonymousFlowError`. `turn.anonymous_tag` stands in where a step must tell one sender from another for
a moment (a rate limit kept in memory): a keyed hash under a key made at process start and never stored.
The dispatcher keeps no answer of such a turn and scrubs the database once the conversation ends."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
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

# Made at start and never stored or logged: `anonymous_tag` can be matched within this process only.
_TAG_KEY = secrets.token_bytes(32)
# Where a sub-step keeps the frame of the flow that called it (see `bot.engine.substeps`).
_CALLER = "_caller"


class AnonymousFlowError(RuntimeError):
    """Code in an anonymous flow asked who the sender is."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} cannot be reached in an anonymous flow")


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
    # Answers in its entry and leaves the conversation where it was, as 人工 does (关闭通知 mid-claim).
    aside: bool = False
    # Who may enter and stay (checked on entry and at every message); see bot/engine/access.py.
    access: Access = ANYONE
    # Shown in the main menu under this label key, to those `access` admits and `visible` says yes to.
    menu_label: str | None = None
    visible: Callable[[Turn], Awaitable[bool]] | None = None
    # Nothing in it may know or keep who the sender is (see the module's docstring); it must admit anyone.
    anonymous: bool = False

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
        self._sealed = 0  # >0 while an anonymous flow's code runs
        self._anonymous_key: tuple[Any, ...] | None = None
        self._anonymous_now = False
        # Some of this turn took place in an anonymous flow: it began in one, or ran one's code.
        self.was_anonymous = anonymous_conversation(app.flows, session.flow, session.data)

    # -- who is speaking, unless the flow is anonymous ------------------------------------------------
    @property
    def anonymous(self) -> bool:
        """Whether the sender must stay unnamed now: an anonymous flow's code is running, or the
        conversation is in an anonymous flow or in a sub-step one of them called."""
        if self._sealed:
            return True
        session = self._session
        # Asked on every look-up of who is speaking: the answer is kept while flow and data stay the same.
        key = (session.flow, id(session.data), _CALLER in session.data)
        if key != self._anonymous_key:
            self._anonymous_key = key
            self._anonymous_now = anonymous_conversation(self.app.flows, session.flow, session.data)
        return self._anonymous_now

    @contextmanager
    def running(self, flow: Flow | None) -> Iterator[None]:
        """While the code of `flow` runs: sealed, when it is anonymous, even after it has left itself."""
        sealed = flow is not None and flow.anonymous
        self._sealed += sealed
        self.was_anonymous |= sealed
        try:
            yield
        finally:
            self._sealed -= sealed

    def _ask_who(self, what: str) -> None:
        if self.anonymous:
            raise AnonymousFlowError(what)

    @property
    def incoming(self) -> Incoming:
        return _SealedIncoming(self._incoming) if self.anonymous else self._incoming  # type: ignore[return-value]

    @incoming.setter
    def incoming(self, incoming: Incoming) -> None:
        self._incoming = incoming

    @property
    def session(self) -> Session:
        return _SealedSession(self._session) if self.anonymous else self._session  # type: ignore[return-value]

    @session.setter
    def session(self, session: Session) -> None:
        self._session = session

    @property
    def anonymous_tag(self) -> str:
        """An opaque name for the sender that only this process can reproduce, for limits kept in memory
        (wrong receipt codes). Never store it, log it or put it next to anything a complaint holds."""
        return hmac.new(_TAG_KEY, self._incoming.user_key.encode(), hashlib.sha256).hexdigest()[:32]

    # -- what the user sent -------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._incoming.text.strip() if self._incoming.kind is Kind.TEXT else ""

    @property
    def user_key(self) -> str:
        self._ask_who("the user key")
        return self._incoming.user_key

    @property
    def data(self) -> dict[str, Any]:
        return self._session.data

    async def member(self) -> Member | None:
        self._ask_who("the member")
        if self._member is False:
            self._member = await self.tx.members.by_user_key(self._incoming.user_key)
        return self._member  # type: ignore[return-value]

    def know_member(self, member: Member | None) -> None:
        """The member this identity now reaches, after a flow enrolled, linked or removed them."""
        self._member = member

    async def staffer(self) -> Staffer | None:
        self._ask_who("the staffer")
        if self._staffer is False:
            self._staffer = await self.tx.staff.get(self._incoming.user_key)
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
        self._session.flow = flow or self._session.flow
        self._session.step = step
        self.moved = True

    def retry(self, key: str | None = None, **context: Any) -> None:
        """Stay on this step: explain what was wrong, then ask again."""
        if key:
            self.say(key, **context)
        self.repeat = True

    def switch_language(self, lang: str | None = None) -> None:
        """To `lang`, or to the next language we speak; remembered, and the step is asked again in it."""
        langs = self.app.locale.languages
        self._session.lang = self.lang = lang or langs[(langs.index(self.lang) + 1) % len(langs)]
        self.retry("engine.language_set")

    def finish(self) -> None:
        """End this flow; the dispatcher returns the user to the main menu."""
        self._session.flow = None
        self._session.step = None
        self._session.data = {}
        self.moved = False

    def leave_anonymous(self) -> None:
        """Called by the engine before it goes elsewhere on the user's word (/start, another flow's
        word): an anonymous conversation is left, and its draft dropped, before anyone is looked up."""
        if not self._sealed and anonymous_conversation(self.app.flows, self._session.flow, self._session.data):
            self.was_anonymous = True
            self.finish()

    async def begin(self, flow_name: str, payload: str = "") -> None:
        """Leave whatever flow the user was in and enter `flow_name` by its entry."""
        flow = self.app.flows[flow_name]
        if flow.aside and flow.entry is not None and await flow.access.admits(self):
            await flow.entry(self, payload)  # it answers; the step the user was at is asked again
            self.repeat = True
            return
        self.leave_anonymous()
        if not await flow.access.admits(self):
            await flow.access.refuse(self)
            flow_name, flow = "menu", self.app.flows["menu"]
        if flow.entry is None:
            raise LookupError(f"flow {flow_name} has no entry")
        self._session.flow, self._session.step, self._session.data = flow_name, None, {}
        self.moved = True
        with self.running(flow):
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


def anonymous_conversation(flows: Mapping[str, Flow], flow_name: str | None, data: Mapping[str, Any]) -> bool:
    """Whether a conversation at `flow_name` with session `data` is anonymous: the flow, or a flow
    waiting for it to return (a sub-step's caller), is."""
    while flow_name is not None:
        flow = flows.get(flow_name)
        if flow is not None and flow.anonymous:
            return True
        frame = data.get(_CALLER) if isinstance(data, Mapping) else None
        if not isinstance(frame, dict):
            return False
        flow_name, data = frame.get("flow"), frame.get("data") or {}
    return False


class _SealedIncoming:
    """An `Incoming` as an anonymous flow sees it: what was sent, never who sent it."""

    _WHO = frozenset({"user_id", "user_key", "contact", "display_name"})

    def __init__(self, incoming: Incoming) -> None:
        object.__setattr__(self, "_incoming", incoming)

    def __getattr__(self, name: str) -> Any:
        if name in self._WHO:
            raise AnonymousFlowError(f"the sender's {name}")
        return getattr(self._incoming, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("an incoming message is not changed by a flow")


class _SealedSession:
    """A `Session` as an anonymous flow sees it: where the conversation is, not whose it is."""

    def __init__(self, session: Session) -> None:
        object.__setattr__(self, "_session", session)

    def __getattr__(self, name: str) -> Any:
        if name == "user_key":
            raise AnonymousFlowError("the session's user key")
        return getattr(self._session, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "user_key":
            raise AnonymousFlowError("the session's user key")
        setattr(self._session, name, value)
