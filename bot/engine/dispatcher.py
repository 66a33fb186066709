"""Turns one `Incoming` into the bot's answer.

Under the user's lock, in ONE transaction: load the session, route the input (global commands, stale
buttons, typed options, the current step's handler), ask the next step, save the session and the
dedupe marker. An error rolls all of it back and the user gets an apology with the step unchanged.

A turn that took place in an anonymous flow (`Flow(anonymous=True)`) leaves its dedupe marker without
the answer (it may hold a receipt code), and once its conversation has ended (submitted, cancelled,
left for another flow, timed out) and the turn is committed, the database is asked to scrub the pages
that still held the draft (`Database.scrub`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import traceback
import unicodedata
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.engine.access import still_admitted
from bot.engine.context import BotContext
from bot.engine.flow import Turn
from bot.engine.messages import SAYS, Incoming, Kind, OutButton, Outgoing, Reply
from bot.locale import normalize_lang
from bot.services.media import receive as receive_media
from storage import Tx
from storage.faults import Fault, classify
from storage.sessions import Session

if TYPE_CHECKING:
    from bot.config import UnionProfile

log = logging.getLogger(__name__)

HOME = "menu"
_STAMP_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# Whole-message words that act as the global commands, in every language we speak.
GLOBAL_WORDS = {
    "菜单": "menu",
    "主菜单": "menu",
    "menu": "menu",
    "取消": "cancel",
    "cancel": "cancel",
    "退出": "cancel",
    "帮助": "help",
    "help": "help",
    # A rider who is stuck asks for a person: answered with the union's contact, the step kept.
    "人工": "human",
    "客服": "human",
    "转人工": "human",
    "找人工": "human",
    "人工客服": "human",
    "人工服务": "human",
    "联系工会": "human",
    "找工会": "human",
    "human": "human",
    "agent": "human",
    "contact": "human",
    "contact the union": "human",
    "?": "human",
    "？": "human",
}
# Slash commands that work in every state, by the global word they stand for.
GLOBAL_COMMANDS = {
    "start": "start",
    "menu": "menu",
    "cancel": "cancel",
    "help": "help",
    "lang": "lang",
    "human": "human",
    "contact_union": "human",
}
MAX_TEXT = 4096
# The payload of an option that skips a step, and the words that pick it when typed.
SKIP = "skip"
SKIP_WORDS = frozenset(
    {"跳过", "略过", "不用", "不用了", "不要", "没有", "无", "不需要", "下一步", "skip", "none", "no", "next"}
)


class _Duplicate(Exception):
    """The update was processed before; raised to roll back the repeat."""


def stamp(version: int) -> str:
    return _STAMP_DIGITS[(version // 36) % 36] + _STAMP_DIGITS[version % 36]


def _dedupe_key(incoming: Incoming) -> str | None:
    if not incoming.dedupe_key:
        return None
    raw = f"{incoming.channel}:{incoming.dedupe_key}"
    return hashlib.sha256(raw.encode()).hexdigest()[:48]


class Dispatcher:
    def __init__(self, app: BotContext) -> None:
        self.app = app

    async def handle(self, incoming: Incoming) -> list[Outgoing]:
        async with self.app.locks.hold(incoming.user_key):
            try:
                # A sent file is fetched and stored before the turn, outside its transaction.
                return await self._turn(await receive_media(self.app, incoming))
            except _Duplicate:
                return await self._earlier_answer(incoming)
            except Exception as e:  # the error boundary: no stack trace ever reaches a user
                fault = classify(e)
                _log_safely(e, incoming, fault)
                if fault is not None:
                    return self._fault(incoming)
                return await self._apology(incoming)

    # -- one turn ----------------------------------------------------------------------------------
    async def _turn(self, incoming: Incoming) -> list[Outgoing]:
        out, scrub = await self.app.db.run_turn(lambda tx: self._turn_in(tx, incoming))
        if scrub:  # committed: the pages of the last draft can go now
            await self.app.db.scrub()
        return out

    async def _turn_in(self, tx: Tx, incoming: Incoming) -> tuple[list[Outgoing], bool]:
        now = self.app.now()
        key = _dedupe_key(incoming)
        state = await tx.turns.load(incoming.user_key, key)
        if state.answered:  # a platform's redelivery: the same answer, and nothing done twice
            return _stored(state.answer), False
        session = state.session or Session(incoming.user_key)
        before = (session.flow, session.step, session.choices)
        lang = self._lang(session, incoming)
        turn = Turn(self.app, tx, session, incoming, lang, now, member=state.member, staffer=state.staffer)
        if session.flow not in (None, HOME) and session.expires_at and session.expires_at <= now:
            turn.finish()  # the draft goes with it
            turn.say("engine.timed_out")
        await self._route(turn, incoming, session)
        await self._settle(turn)
        out = self._render(turn, session, before)
        session.expires_at = now + self._timeout() if session.flow not in (None, HOME) else None
        if turn.forget_session:
            await tx.sessions.delete(incoming.user_key)
        else:
            await tx.sessions.save(session)
        anonymous = turn.was_anonymous or turn.anonymous
        # A repeat of an anonymous turn gets no answer rather than one kept an hour (a receipt code).
        answer = None if anonymous else json.dumps([o.to_json() for o in out])
        if anonymous:
            out = [replace(o, private=True) for o in out]
        if key and not await tx.updates.mark(key, now, answer):
            raise _Duplicate  # handled meanwhile by another process (PostgreSQL deployments)
        return out, anonymous and not turn.anonymous

    def _timeout(self) -> timedelta:
        return timedelta(minutes=self.app.settings.session_timeout_minutes)

    def _lang(self, session: Session, incoming: Incoming) -> str:
        available = self.app.locale.languages
        return (
            (session.lang if session.lang in available else None)
            or normalize_lang(incoming.language_hint, available)
            or self.app.profile.default_language
        )

    async def _route(self, turn: Turn, inc: Incoming, session: Session) -> None:
        if not await still_admitted(turn):  # removed from staff, or left, since the last message
            await turn.begin(HOME, "")
            return
        if inc.kind is Kind.BUTTON and inc.payload.startswith(SAYS):
            # A button of a message sent later (a reminder) stands for words the member could type: it is
            # never stale, and can do nothing that typing them could not.
            inc = turn.incoming = replace(inc, kind=Kind.TEXT, text=inc.payload[len(SAYS) :], payload="")
        if inc.kind is Kind.BUTTON:
            stamp_, _, payload = inc.payload.partition("|")
            if stamp_ != stamp(session.version) or payload not in {p for _, p in session.choices}:
                turn.retry("engine.stale_button")
                return
            turn.choice = payload
        elif inc.kind is Kind.TEXT:
            if len(inc.text) > MAX_TEXT:
                turn.retry("engine.too_long")
                return
            turn.choice = _typed_choice(inc.text, session.choices)
            if turn.choice is None:
                word = inc.text.strip().casefold()
                if word in GLOBAL_WORDS:
                    await self._global(turn, GLOBAL_WORDS[word], "")
                    return
                flow = self.app.flow_for_words(inc.text)
                if flow is not None and flow.name != session.flow:
                    await turn.begin(flow.name, "")
                    return
        elif inc.kind is Kind.COMMAND:
            word = inc.text.lstrip("/").split("@")[0].lower()
            if word in GLOBAL_COMMANDS:
                await self._global(turn, GLOBAL_COMMANDS[word], inc.payload)
            elif (flow := self.app.flow_for_command(word)) is not None:
                await turn.begin(flow.name, inc.payload)
            else:
                turn.retry("engine.unknown_command")
            return
        if session.flow and session.step in (flow := self.app.flows[session.flow]).handlers:
            with turn.running(flow):
                await flow.handlers[session.step](turn)
        else:
            await turn.begin(HOME, "")

    async def _global(self, turn: Turn, word: str, payload: str) -> None:
        if word == "start":
            flow, _, arg = payload.partition("-")
            turn.leave_anonymous()  # before the member is looked up
            if flow in self.app.flows and flow != HOME:
                await turn.begin(flow, arg)
            elif await turn.member() is None:
                await turn.begin("join")
            else:
                turn.say("menu.welcome", union=self.app.profile.name(turn.lang))
                await turn.begin(HOME, "")
        elif word == "menu":
            await turn.begin(HOME, "")
        elif word == "cancel":
            in_flow = turn.session.flow not in (None, HOME)
            turn.say("engine.cancelled" if in_flow else "engine.nothing_to_cancel")
            await turn.begin(HOME, "")
        elif word == "help":
            turn.say("engine.help")
            turn.repeat = True
        elif word == "lang":
            turn.switch_language(normalize_lang(payload, self.app.locale.languages))
        elif word == "human":
            in_flow = turn.session.flow not in (None, HOME)
            turn.say("human.contact", **_contact(self.app.profile, turn.lang), in_flow=in_flow)
            turn.repeat = True

    async def _settle(self, turn: Turn) -> None:
        """Ask the step the conversation has moved to, or ask the same step again after a retry."""
        session = turn.session
        if session.flow is None:
            await turn.begin(HOME, "")
        if (turn.moved or turn.repeat) and session.flow:
            flow = self.app.flows[session.flow]
            with turn.running(flow):
                await flow.asks[session.step](turn)

    def _render(self, turn: Turn, session: Session, before: tuple) -> list[Outgoing]:
        reply, lang = turn.reply, turn.lang
        labels = [self.app.locale.render(lang, b.label) for b in reply.buttons]
        choices = [[label, b.payload] for label, b in zip(labels, reply.buttons, strict=True)]
        if (session.flow, session.step, choices) != before:
            session.version += 1
        session.choices = choices
        return [render_reply(self.app, reply, lang, stamp(session.version), labels, turn.incoming.channel)]

    # -- when a turn does not complete ---------------------------------------------------------------
    async def _earlier_answer(self, incoming: Incoming) -> list[Outgoing]:
        async with self.app.db.transaction() as tx:
            _, stored = await tx.updates.seen(_dedupe_key(incoming) or "")
        return _stored(stored)

    def _fault(self, incoming: Incoming) -> list[Outgoing]:
        """The database cannot do its work (read-only, full, damaged, locked for long): "try again" would
        fail the same way, so say plainly that the service has a fault. Nothing is read or written, as
        that would fail too (or wait out a lock again); the session stays as the last good turn left it."""
        lang = normalize_lang(incoming.language_hint, self.app.locale.languages) or self.app.profile.default_language
        return [Outgoing(self.app.locale.text(lang, "engine.fault"), lang=lang)]

    async def _apology(self, incoming: Incoming) -> list[Outgoing]:
        try:
            async with self.app.db.transaction() as tx:
                session = await tx.sessions.get(incoming.user_key) or Session(incoming.user_key)
                turn = Turn(self.app, tx, session, incoming, self._lang(session, incoming), self.app.now())
                turn.say("engine.sorry")
                turn.repeat = True
                await self._settle(turn)
                return [render_reply(self.app, turn.reply, turn.lang, stamp(session.version), channel=incoming.channel)]
        except Exception as e:
            _log_safely(e, incoming)
            lang = normalize_lang(incoming.language_hint, self.app.locale.languages)
            return [Outgoing(self.app.locale.text(lang or self.app.profile.default_language, "engine.sorry"))]


def _contact(profile: UnionProfile, lang: str) -> dict[str, Any]:
    """The union's desk and its stations, in `lang`, for `human.contact`."""
    desk = profile.contact
    stations = [{"name": s.name(lang), "address": s.address(lang), "hours": s.hours(lang)} for s in profile.stations]
    return {
        "phone": desk.phone if desk else None,
        "hours": desk.hours(lang) if desk else None,
        "wechat": desk.wechat if desk else None,
        "email": desk.email if desk else None,
        "stations": stations,
    }


def says(label: str, words: str) -> OutButton:
    """A button for a message sent outside a turn (through the outbox): pressing it is the same as typing
    `words`, whatever the conversation has done since. Keep `words` short: Telegram allows 64 bytes."""
    return OutButton(label, SAYS + words)


def render_reply(
    app: BotContext, reply: Reply, lang: str, stamp_: str, labels: list[str] | None = None, channel: str = ""
) -> Outgoing:
    render = app.locale.render
    labels = labels if labels is not None else [render(lang, b.label) for b in reply.buttons]
    return Outgoing(
        text="\n\n".join(render(lang, t, channel) for t in reply.texts),  # words like "tap" differ by channel
        buttons=tuple(
            OutButton(label, f"{stamp_}|{b.payload}") for label, b in zip(labels, reply.buttons, strict=True)
        ),
        requests=tuple(reply.requests),
        image=reply.image,
        document=reply.document,
        request_labels={str(r): app.locale.text(lang, f"engine.request_{r}") for r in reply.requests},
        lang=lang,
    )


def _stored(answer: str | None) -> list[Outgoing]:
    """An answer given before; empty once it has been forgotten (there is then nothing to repeat)."""
    return [Outgoing.from_json(o) for o in json.loads(answer)] if answer else []


def _typed_choice(text: str, choices: list[list[str]]) -> str | None:
    """A typed option number ("2", "２"), a whole label (emoji and punctuation aside) or the option's
    own word ("agree", or 跳过 for the option that skips) picks that option on every channel."""
    typed = unicodedata.normalize("NFKC", text).strip()
    if not typed or not choices:
        return None
    if typed.isdigit():
        n = int(typed)
        return choices[n - 1][1] if 1 <= n <= len(choices) else None
    folded = _letters(typed)
    for label, payload in choices:
        if folded and folded in (_letters(label), payload.casefold()):
            return payload
    if folded in SKIP_WORDS and any(payload == SKIP for _, payload in choices):
        return SKIP
    return None


@functools.lru_cache(maxsize=4096)  # the same few hundred labels, matched on most typed messages
def _letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _log_safely(error: BaseException, incoming: Incoming, fault: Fault | None = None) -> None:
    # Exception messages can quote what the user sent (a bad value, an SQL parameter): log where it
    # happened and what kind of error it was, never its text. A database fault is named by its kind
    # and the driver's code, which is what the operator has to act on.
    frames = traceback.extract_tb(error.__traceback__)
    where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames[-6:]))
    if fault is not None:
        log.error(
            "turn failed on %s: database %s (%s, %s) at %s",
            incoming.channel,
            fault.kind,
            fault.code,
            type(error).__name__,
            where,
        )
    else:
        log.error("turn failed on %s: %s at %s", incoming.channel, type(error).__name__, where)
