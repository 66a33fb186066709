"""The start-up check that every step a flow can reach exists, so a typo stops the bot at boot with
the flow and step named, instead of apologising to a rider mid-conversation.

Steps are names in strings, so the check reads the source of each flow's asks, handlers and entry,
and of the module functions they call, for `.goto("step")`, `.goto("step", "flow")`,
`.begin("flow")` and `.call("flow", then="step")` with literal arguments. A target held in a
variable cannot be read; forms check their own (`bot.engine.forms`). Besides: every ask has a
handler and every handler an ask, a flow that can be entered has an entry, and every form field
resolves to a step and its sub-flow. An anonymous flow admits anyone: asking who someone is, to let
them in, is what it must never do.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from types import CodeType, FunctionType
from typing import Any

from bot.engine.access import Who
from bot.engine.flow import Flow
from bot.engine.forms import forms_of


class FlowCheckError(RuntimeError):
    """A flow goes somewhere that does not exist."""


@dataclass(frozen=True)
class _Move:
    how: str  # "goto", "begin" or "call"
    step: str | None
    flow: str | None  # None: the flow the code belongs to
    line: int


def check_flows(flows: Mapping[str, Flow]) -> None:
    """Raise `FlowCheckError` listing every unreachable target, or return quietly."""
    problems = [p for flow in flows.values() for p in _problems(flow, flows)]
    if problems:
        raise FlowCheckError("flows that would fail in a chat:\n  " + "\n  ".join(problems))


def _problems(flow: Flow, flows: Mapping[str, Flow]) -> Iterator[str]:
    name = flow.name
    for step in sorted(flow.asks.keys() - flow.handlers.keys()):
        yield f"flow {name!r}, step {step!r}: it asks, but nothing handles the answer (no @flow.on)"
    for step in sorted(flow.handlers.keys() - flow.asks.keys()):
        yield f"flow {name!r}, step {step!r}: it handles answers, but is never asked (no @flow.ask)"
    if flow.entry is None and (flow.commands or flow.words or flow.menu_label):
        yield f"flow {name!r}: it can be entered (command, word or menu) but has no @flow.start"
    if flow.anonymous and flow.access.who is not Who.ANYONE:
        yield f"flow {name!r}: it is anonymous, so it must admit anyone (access {flow.access.who.value})"
    for form in forms_of(flow):
        for field in form.fields:
            if field.name not in flow.asks or field.name not in flow.handlers:
                yield f"flow {name!r}, form field {field.name!r}: its step is gone"
            if field.call is not None and getattr(flows.get(field.call), "entry", None) is None:
                yield f"flow {name!r}, form field {field.name!r}: calls {field.call!r}, which is no flow with an entry"
    for where, fn in _parts(flow):
        for move in _moves(fn):
            target_flow = flows.get(move.flow or name)
            at = f"flow {name!r}, {where} (line {move.line})"
            if target_flow is None:
                yield f"{at}: {move.how}s to flow {move.flow!r}, which does not exist"
            elif move.how in ("begin", "call") and target_flow.entry is None:
                yield f"{at}: {move.how}s flow {move.flow!r}, which has no @flow.start"
            elif move.step is not None and not (move.step in target_flow.asks and move.step in target_flow.handlers):
                yield f"{at}: goes to step {move.step!r} of flow {target_flow.name!r}, which does not exist"


def _parts(flow: Flow) -> Iterator[tuple[str, Callable[..., Any]]]:
    if flow.entry is not None:
        yield "its start", flow.entry
    for step, fn in flow.asks.items():
        yield f"step {step!r} (ask)", fn
    for step, fn in flow.handlers.items():
        yield f"step {step!r} (on)", fn


def _moves(fn: Callable[..., Any]) -> list[_Move]:
    """The literal moves in `fn` and in the functions of its module that it calls, transitively."""
    found: list[_Move] = []
    seen: set[CodeType] = set()
    todo = [fn]
    while todo:
        current = inspect.unwrap(todo.pop())
        code = getattr(current, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        moves, called = _read(code)
        found += moves
        module_globals = getattr(current, "__globals__", {})
        todo += [
            g
            for n in called
            if isinstance(g := module_globals.get(n), FunctionType) and g.__module__ == current.__module__
        ]
    return found


@cache  # by code object: the flows are read once per process, however many bots a test suite starts
def _read(code: CodeType) -> tuple[list[_Move], frozenset[str]]:
    try:
        lines, first = inspect.getsourcelines(code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):  # built at run time, no source shipped, or a lambda mid-line
        return [], frozenset()
    moves, called = [], set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name):
            called.add(node.func.id)
        elif isinstance(node.func, ast.Attribute):
            moves += _move(node, first)
    return moves, frozenset(called)


def _move(node: ast.Call, first: int) -> list[_Move]:
    how = node.func.attr  # type: ignore[attr-defined]
    args = [_literal(a) for a in node.args]
    kwargs = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
    line = first + node.lineno - 1
    if how not in ("goto", "begin", "call") or not args or args[0] is None:
        return []
    if how == "goto":
        return [_Move(how, args[0], args[1] if len(args) > 1 else kwargs.get("flow"), line)]
    moves = [_Move(how, None, args[0], line)]
    if how == "call" and (then := kwargs.get("then") or (args[1] if len(args) > 1 else None)):
        moves.append(_Move("goto", then, None, line))  # `done` comes back to this step of the caller
    return moves


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
