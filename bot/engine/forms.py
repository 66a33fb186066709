"""Forms: the questions of a flow declared once, as fields in order.

A `Form` puts one step per field on its flow, plus a summary step that shows every answer with a
"change X" button per field and a confirm button. Moving on always means "the first field that
applies and has no answer yet, else the summary", so the same rule gives the order, skips a field whose
condition is false, asks a field that a changed answer has just made necessary, and brings a member
who changed one answer straight back to the summary.

    form = Form(flow, [
        Field("phone", ask="x.ask_phone", parse=mainland_mobile, invalid="x.phone_invalid",
              request=Request.CONTACT, show=lambda turn: mask_phone(turn.data["phone"])),
        Field("plate", ask="x.ask_plate", parse=short_answer, when=lambda d: d.get("kind") == "driver"),
        Field("day", ask="x.ask_day", call="pick_date", call_args=lambda turn: {"not_future": True}),
    ], on_confirm=submit)
    ...
    await form.start(turn)  # from the step before the form

A field reads its answer with `pick(turn, payload)` for a tapped (or typed) option, else with `parse`,
a parse-or-None validator from `bot.validation`, given the typed text, a shared contact's phone, a
location's (lat, lon) or a photo's `Media`, by what the field requests; None is answered with
`turn.retry(invalid)` and the step stays. A field too particular for that has its own `on` handler,
which stores the answer and calls `await form.next(turn)`; a field answered by a sub-step (`call`)
gets the sub-step's value (see `bot.engine.substeps`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.engine.messages import Kind, Label, Request, T

if TYPE_CHECKING:
    from bot.engine.flow import Flow, Turn

Ask = Callable[["Turn"], Awaitable[None]]
Handle = Callable[["Turn"], Awaitable[None]]

CONFIRM = "confirm"
CHANGE = "fix:"
GENERIC_SUMMARY = "forms.summary"


@dataclass(frozen=True)
class Field:
    name: str  # its step, and where its answer is kept unless `key` says otherwise
    ask: str | Ask  # a locale key said with `context`, or a function that also adds buttons
    parse: Callable[[Any], Any] | None = None
    pick: Callable[[Turn, str], Any] | None = None
    invalid: str = "forms.invalid"
    request: Request | None = None
    when: Callable[[Mapping[str, Any]], bool] | None = None  # asked only when this holds for the answers so far
    label: str | None = None  # a locale key naming it, for the generic summary and "change" button
    show: Callable[[Turn], Label] | None = None  # in the summary; mask what is personal
    change: Label | None = None
    key: str | None = None
    on: Handle | None = None
    call: str | None = None
    call_args: Callable[[Turn], Mapping[str, Any]] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kept_as(self) -> str:
        return self.key or self.name

    def applies(self, data: Mapping[str, Any]) -> bool:
        return self.when is None or bool(self.when(data))


class FormError(ValueError):
    """A form that cannot work as declared; raised when the module defining it is imported."""


# The forms on each flow, for the start-up check (`bot.engine.checks`). By id: a Flow is unhashable.
_FORMS: dict[int, list[Form]] = {}


def forms_of(flow: Flow) -> list[Form]:
    return _FORMS.get(id(flow), [])


class Form:
    def __init__(
        self,
        flow: Flow,
        fields: Sequence[Field],
        *,
        on_confirm: Handle,
        summary_step: str = "confirm",
        summary: str = GENERIC_SUMMARY,
        confirm: Label = T("forms.confirm"),
    ) -> None:
        self.flow = flow
        self.fields = tuple(fields)
        self.by_name = {f.name: f for f in self.fields}
        self.summary_step = summary_step
        self.summary = summary
        self.confirm = confirm
        self.on_confirm = on_confirm
        self._validate()
        for f in self.fields:
            flow.ask(f.name)(self._asker(f))
            flow.on(f.name)(f.on or self._handler(f))
        flow.ask(summary_step)(self._ask_summary)
        flow.on(summary_step)(self._on_summary)
        _FORMS.setdefault(id(flow), []).append(self)

    def _validate(self) -> None:
        where = f"flow {self.flow.name!r}"
        steps = [f.name for f in self.fields] + [self.summary_step]
        if len(set(steps)) != len(steps):
            raise FormError(f"{where}: a form field is named twice, or like its summary step: {steps}")
        for name in steps:
            if name in self.flow.asks or name in self.flow.handlers:
                raise FormError(f"{where}: step {name!r} of the form is already a step of the flow")
        for f in self.fields:
            if f.on is None and f.call is None and f.parse is None and f.pick is None:
                raise FormError(f"{where}, field {f.name!r}: nothing reads its answer (parse, pick, on or call)")
            if f.change is None and f.label is None:
                raise FormError(f"{where}, field {f.name!r}: needs a label or a change button label")
            if self.summary == GENERIC_SUMMARY and f.label is None:
                raise FormError(f"{where}, field {f.name!r}: the generic summary needs its label")

    # -- where the form goes next ------------------------------------------------------------------
    async def start(self, turn: Turn) -> None:
        await self.next(turn)

    async def next(self, turn: Turn) -> None:
        """To the first field that applies and is unanswered, else to the summary."""
        missing = self._missing(turn.data)
        if missing is None:
            turn.goto(self.summary_step)
        else:
            await self._enter(turn, missing)

    def values(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The answers of the fields that apply, by field name: what a confirm handler submits."""
        return {f.name: data[f.kept_as] for f in self.fields if f.applies(data) and f.kept_as in data}

    def _missing(self, data: Mapping[str, Any]) -> Field | None:
        return next((f for f in self.fields if f.applies(data) and f.kept_as not in data), None)

    async def _enter(self, turn: Turn, f: Field) -> None:
        if f.call is None:
            turn.goto(f.name)
            return
        args = dict(f.call_args(turn)) if f.call_args else {}
        if isinstance(f.ask, str):
            args.setdefault("prompt", f.ask)
        await turn.call(f.call, then=f.name, **args)

    # -- the field steps ---------------------------------------------------------------------------
    def _asker(self, f: Field) -> Ask:
        async def ask(turn: Turn) -> None:
            if isinstance(f.ask, str):
                turn.say(f.ask, **f.context)
            else:
                await f.ask(turn)
            if f.request is not None:
                turn.request(f.request)

        return ask

    def _handler(self, f: Field) -> Handle:
        async def handle(turn: Turn) -> None:
            if f.call is not None:
                if turn.returned != f.call:  # resting here (the caller retried): anything goes back in
                    await self._enter(turn, f)
                    return
                value = turn.result
            else:
                value = f.pick(turn, turn.choice) if f.pick and turn.choice is not None else None
                if value is None and f.parse is not None:
                    raw = _answer(turn, f.request)
                    value = f.parse(raw) if raw is not None else None
            if value is None:
                turn.retry(f.invalid)
                return
            turn.data[f.kept_as] = value
            await self.next(turn)

        return handle

    # -- the summary -------------------------------------------------------------------------------
    def _shown(self, turn: Turn, f: Field) -> str:
        # A shown value may be words of ours (a `T`): rendered here, as it goes inside another sentence.
        return turn.app.locale.render(turn.lang, f.show(turn)) if f.show else str(turn.data[f.kept_as])

    async def _ask_summary(self, turn: Turn) -> None:
        shown = [(f, self._shown(turn, f)) for f in self.fields if f.applies(turn.data) and f.kept_as in turn.data]
        turn.say(
            self.summary,
            rows=[(f.label, value) for f, value in shown],
            **{f.name: value for f, value in shown},
        )
        turn.button(self.confirm, CONFIRM)
        for f, _ in shown:
            turn.button(f.change or T("forms.change", field=f.label), CHANGE + f.name)

    async def _on_summary(self, turn: Turn) -> None:
        choice = turn.choice or ""
        changing = self.by_name.get(choice.removeprefix(CHANGE)) if choice.startswith(CHANGE) else None
        if changing is not None and changing.applies(turn.data):
            await self._enter(turn, changing)
        elif choice == CONFIRM:
            if self._missing(turn.data) is not None:  # an answer that a change made necessary
                await self.next(turn)
            else:
                await self.on_confirm(turn)
        else:
            turn.retry("engine.choose_option")


def _answer(turn: Turn, request: Request | None) -> Any:
    """What the member sent for a field: its typed text, or what the field asked their phone for."""
    inc = turn.incoming
    if request is Request.CONTACT and inc.kind is Kind.CONTACT and inc.contact is not None:
        # Only one's own number: a contact card of someone else is not an answer.
        own = inc.contact.owner_id is None or inc.contact.owner_id == inc.user_id
        return inc.contact.phone if own else None
    if request is Request.LOCATION and inc.kind is Kind.LOCATION:
        return inc.location
    if request is Request.PHOTO and inc.kind is Kind.PHOTO:
        return inc.media
    return turn.text or None
