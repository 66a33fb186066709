"""The satisfaction report's figures on a real SQLite file: a group of 4 reviews is "<5" and one of 5
is shown; a second group is withheld so the first cannot be worked out from the totals (for review
counts, indicator ratings, distribution cells, follow-up and categories); the change since the
previous period; the median days to a first answer; and no complaint text in any format."""

from __future__ import annotations

import csv
import io
import os
from datetime import date
from typing import Any

from sqlalchemy import insert

from bot.services import complaints as complaint_service
from bot.services import satisfaction
from bot.services.report_render import render
from bot.services.satisfaction import SCORES, SMALL, WITHHELD, GroupFigures, SatisfactionReport
from storage.schema import review_scores, reviews

PERIOD, PREVIOUS = "2026-11", "2026-10"
A, B, C = "美团", "饿了么", "滴滴出行"  # companies of the default profile
ALL = ("labour_relations", "pay", "safety", "democratic_management", "union_service")


async def add(  # type: ignore[no-untyped-def]
    app,
    n: int,
    target: str | None = A,
    *,
    period: str = PERIOD,
    kind: str = "company",
    score: int | dict[str, int] | None = 3,
    category: str = "pay",
    days: int | None = None,
    closed: bool = False,
) -> None:
    """`n` reviews as the complaints service leaves them, each rated `score` on every indicator (or on
    those of a dict, or none)."""
    scores = {i: score for i in ALL} if isinstance(score, int) else (score or {})
    async with app.db.transaction() as tx:
        for _ in range(n):
            rid = os.urandom(12).hex()
            await tx.conn.execute(
                insert(reviews).values(
                    id=rid,
                    period=period,
                    target_kind=kind,
                    target=target if kind == "company" else None,
                    category=category,
                    first_answer_days=days,
                    closed=closed,
                )
            )
            for indicator, s in scores.items():
                await tx.conn.execute(
                    insert(review_scores).values(
                        review_id=rid, indicator=indicator, period=period, target=target, score=s
                    )
                )


async def report(app, period: str = PERIOD) -> SatisfactionReport:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await satisfaction.satisfaction_report(app, tx, period)


def group(r: SatisfactionReport, name: str) -> GroupFigures:
    return next(g for g in r.groups if g.name == name or g.key == name)


def derivable(r: SatisfactionReport) -> list[str]:
    """Every hidden figure of a single group that the overall minus the shown groups gives away: what
    someone with the published report and a calculator could work out."""
    found = []
    measures: dict[str, Any] = {
        "reviews": lambda g: g.reviews,
        "answered": lambda g: g.answered,
        "closed": lambda g: g.closed,
    }
    for n, i in enumerate(ALL):
        measures[f"{i}.rated"] = lambda g, n=n: g.indicators[n].rated if g.indicators else None
        for s in SCORES:
            measures[f"{i}.{s}"] = lambda g, n=n, s=s: (
                g.indicators[n].distribution[s - 1] if g.indicators and g.indicators[n].distribution else None
            )
    for name, measure in measures.items():
        total = measure(r.overall)
        hidden = [g for g in r.groups if measure(g) is None]
        if total is not None and len(hidden) == 1:
            found.append(f"{hidden[0].key} {name} = {total - sum(measure(g) for g in r.groups if g not in hidden)}")
    counts = [c.count for c in r.categories]
    if r.overall.reviews is not None and counts.count(None) == 1:
        found.append("one category")
    return found


async def test_a_company_of_4_reviews_shows_lt5_and_nothing_else(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 4, A, score=1)
    await add(app, 20, B)
    await add(app, 20, C)
    r = await report(app)
    a = group(r, A)
    assert a.hidden == SMALL
    assert (a.reviews, a.indicators, a.answered, a.closed, a.median_days, a.main_categories) == (
        None,
        (),
        None,
        None,
        None,
        (),
    )
    md = render(r, "md", app.locale, "zh_CN", "工会", date(2026, 12, 1)).decode()
    section = md.split(f"## {A}")[1].split("##")[0]
    assert "<5" in section and "|" not in section and "平均" not in section
    csv_rows = list(
        csv.reader(io.StringIO(render(r, "csv", app.locale, "en", "U", date(2026, 12, 1)).decode("utf-8-sig")))
    )
    assert [row[3:] for row in csv_rows if row[1] == A] == [["Reviews", "<5"]]  # one row: no figure at all


async def test_a_company_of_5_reviews_is_shown(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 5, A, score=1)
    await add(app, 20, B)
    await add(app, 20, C)
    r = await report(app)
    a = group(r, A)
    assert a.hidden is None and a.reviews == 5
    assert [f.average for f in a.indicators] == [1.0] * 5
    assert a.indicators[0].distribution == (5, 0, 0, 0, 0)
    assert all(g.hidden is None for g in r.groups)
    assert derivable(r) == []


async def test_two_companies_one_of_4_the_other_is_withheld_too(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 4, A, score=1, days=2, closed=True)
    await add(app, 30, B, score=4, days=5)
    r = await report(app)
    assert r.overall.reviews == 34
    assert group(r, A).hidden == SMALL
    assert group(r, B).hidden == WITHHELD and group(r, B).reviews is None
    assert derivable(r) == []
    md = render(r, "md", app.locale, "en", "U", date(2026, 12, 1)).decode()
    assert "withheld" in md and "<5" in md


async def test_the_smallest_other_group_is_the_one_withheld(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 3, A)
    await add(app, 6, B)
    await add(app, 30, C)
    r = await report(app)
    assert [group(r, n).hidden for n in (A, B, C)] == [SMALL, WITHHELD, None]
    assert derivable(r) == []


async def test_an_indicator_rated_by_fewer_than_5_is_hidden_and_its_complement_too(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 17, A, score={"pay": 2})
    await add(app, 3, A, score={"pay": 2, "safety": 1})  # A: 20 reviews, 3 rated safety
    await add(app, 20, B, score={"pay": 4, "safety": 5})
    await add(app, 20, C, score={"pay": 4, "safety": 4})
    r = await report(app)
    a, b, c = group(r, A), group(r, B), group(r, C)
    safety = ALL.index("safety")
    assert a.hidden is None and a.indicators[safety].hidden == SMALL
    assert a.indicators[ALL.index("pay")].average == 2.0
    # The overall safety figures minus B's and C's would be A's three: one of them is withheld as well.
    assert sorted(g.indicators[safety].hidden or "" for g in (b, c)) == ["", WITHHELD]
    assert [g.indicators[ALL.index("pay")].average for g in (b, c)] == [4.0, 4.0]
    assert r.overall.indicators[safety].rated == 43
    assert derivable(r) == []


async def test_a_distribution_cell_of_a_hidden_group_cannot_be_worked_out(bot) -> None:  # type: ignore[no-untyped-def]
    """Only A rated anyone 1 on pay; A (4 reviews) and B are hidden; C is shown. The overall's "1" cell
    minus C's is A's and B's together: whether B's is 0 is not published."""
    app, _ = bot
    await add(app, 4, A, score=1)
    await add(app, 8, B, score=3)
    await add(app, 30, C, score=5)
    r = await report(app)
    assert [group(r, n).hidden for n in (A, B, C)] == [SMALL, WITHHELD, None]
    assert r.overall.indicators[0].distribution == (4, 0, 8, 0, 30)
    assert derivable(r) == []


async def test_followup_of_a_hidden_group_cannot_be_worked_out(bot) -> None:  # type: ignore[no-untyped-def]
    """Only A's complaints were answered, and A is hidden: the overall answered count minus the shown
    groups' is A's and B's together, B being withheld with all its figures."""
    app, _ = bot
    await add(app, 4, A, days=3, closed=True)
    await add(app, 6, B)
    await add(app, 7, B, kind="union")
    await add(app, 20, C)
    r = await report(app)
    assert group(r, A).hidden == SMALL
    assert r.overall.answered == 4 and r.overall.closed == 4
    assert group(r, B).hidden == WITHHELD and group(r, B).answered is None
    assert [g.answered for g in r.groups if g.hidden is None] == [0, 0]
    assert derivable(r) == []


async def test_category_counts_under_5_and_their_complement(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 12, A, category="pay")
    await add(app, 3, A, category="hours")
    await add(app, 8, B, category="safety")
    r = await report(app)
    by = {c.category: c for c in r.categories}
    assert by["pay"].count == 12 and by["pay"].hidden is None
    assert by["hours"].hidden == SMALL and by["hours"].count is None
    assert by["safety"].hidden == WITHHELD and by["safety"].count is None  # else 23 - 12 - 8 = 3
    assert group(r, A).main_categories == ("pay",)


async def test_change_since_the_previous_period(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 10, A, period=PREVIOUS, score=2)
    await add(app, 10, A, score=4)
    await add(app, 4, B, period=PREVIOUS, score=1)  # too few before: no change shown for B
    await add(app, 6, "顺丰同城", period=PREVIOUS, score=3)  # withheld before, so that B's 4 stay hidden
    await add(app, 10, B, score=3)
    await add(app, 10, C, score=3)
    r = await report(app)
    assert r.previous == PREVIOUS
    assert [f.change for f in group(r, A).indicators] == [2.0] * 5
    assert [f.change for f in group(r, B).indicators] == [None] * 5
    assert [f.change for f in group(r, C).indicators] == [None] * 5  # no reviews before
    now, before = (10 * 4 + 10 * 3 + 10 * 3) / 30, (10 * 2 + 4 * 1 + 6 * 3) / 20
    assert abs(r.overall.indicators[0].change - (now - before)) < 1e-9
    md = render(r, "md", app.locale, "en", "U", date(2026, 12, 1)).decode()
    assert "+2.00" in md


async def test_median_days_to_the_first_answer(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    for days in (1, 2, 3, 10, 20, 30):
        await add(app, 1, A, days=days, closed=days > 5)
    await add(app, 2, A)  # not answered: not in the median
    r = await report(app)
    a = group(r, A)
    assert (a.answered, a.closed, a.median_days) == (6, 3, 6.5)
    await add(app, 1, A, days=4)
    a = group(await report(app), A)
    assert (a.answered, a.median_days) == (7, 4.0)
    assert satisfaction.median_of({1: 1}) == 1 and satisfaction.median_of({}) is None


async def test_a_median_of_fewer_than_5_answers_is_not_shown(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 3, A, days=7)
    await add(app, 10, A)
    a = group(await report(app), A)
    assert a.answered == 3 and a.median_days is None and a.median_hidden == SMALL


async def test_fewer_than_5_reviews_in_all_shows_nothing(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    await add(app, 4, A)
    r = await report(app)
    assert r.overall.hidden == SMALL and r.overall.reviews is None and r.categories == ()
    html = render(r, "html", app.locale, "zh_CN", "工会", date(2026, 12, 1)).decode()
    assert "<5" in html.replace("&lt;", "<") and "data:image/png" not in html


async def test_no_complaint_text_in_any_format(bot) -> None:  # type: ignore[no-untyped-def]
    """Complaints submitted, answered and added to through the service with a marker in every text:
    the marker is in none of the report's formats (nor in its pictures, which are decoded and read as bytes)."""
    app, _ = bot
    marker = "ZQXMARK" + os.urandom(4).hex()
    today = date(2026, 11, 12)
    for n in range(15):
        draft = complaint_service.Draft(
            target_kind="company" if n % 3 else "union",
            target=A if n % 3 else None,
            category="pay",
            ratings={i: 1 + n % 5 for i in ALL},
            description=f"{marker} 站长扣了我 {n} 单的钱",
        )
        async with app.db.transaction() as tx:
            complaint, _code = await complaint_service.submit(app, tx, draft, today)
            await complaint_service.reply(app, tx, complaint.id, f"{marker} 工会的答复", today)
            await complaint_service.add_from_worker(app, tx, complaint.id, f"{marker} 补充", today=today)
    r = await report(app)
    assert r.overall.reviews == 15
    assert group(r, A).reviews == 10
    import base64
    import re

    for fmt in ("html", "md", "csv"):
        for lang in ("zh_CN", "en"):
            out = render(r, fmt, app.locale, lang, "工会", date(2026, 12, 1))
            assert marker.encode() not in out and marker.lower().encode() not in out.lower()
            for png in re.findall(rb"data:image/png;base64,([A-Za-z0-9+/=]+)", out):
                assert marker.encode() not in base64.b64decode(png)


def test_periods_are_read_and_refused() -> None:
    assert satisfaction.read_period("2026-11") == "2026-11"
    assert satisfaction.read_period(" ２０２６／３ ") == "2026-03"
    for bad in ("2026-13", "2026-00", "11-2026", "next month", "", "2026-11-01", "1999-01"):
        assert satisfaction.read_period(bad) is None, bad
    assert satisfaction.previous_period("2026-01") == "2025-12"
    assert satisfaction.previous_period("2026-11") == "2026-10"


def test_complementary_rule() -> None:
    comp = satisfaction.complementary
    assert comp({"a": 4, "b": 30}, {"a"}) == ({"a", "b"}, False)
    assert comp({"a": 4, "b": 6, "c": 30}, {"a"}) == ({"a", "b"}, False)
    assert comp({"a": 4, "b": 0, "c": 30}, {"a"}) == ({"a", "c"}, False)  # a figure before a zero
    assert comp({"a": 4, "b": 3, "c": 30}, {"a", "b"}) == ({"a", "b"}, False)
    assert comp({"a": 0, "b": 30}, {"a"}) == ({"a", "b"}, False)  # a zero is a figure too
    assert comp({"a": 30, "b": 40}, set()) == (set(), False)
    assert comp({"a": 4}, {"a"}) == ({"a"}, True)  # the total is a's: it must go too
