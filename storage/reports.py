"""Satisfaction-report figures, read from the anonymous reviews: aggregates only, never a single complaint.

Every statement here is a GROUP BY over `reviews` and `review_scores` for one period: what comes back
are counts per (target, category), per (target, days to first answer) and per (target, indicator,
score). No row identifies a review, and nothing here reads a complaint's text or thread. Which groups
may be shown (fewer than 5, and the second suppression) is `bot.services.satisfaction`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import review_scores, reviews


@dataclass(frozen=True)
class CategoryCount:
    """The reviews of one target in one category, with how many of them were answered and closed."""

    target_kind: str
    target: str | None
    category: str
    reviews: int
    answered: int
    closed: int


@dataclass(frozen=True)
class AnswerDays:
    """How many reviews of one target had their first answer after `days` days."""

    target_kind: str
    target: str | None
    days: int
    reviews: int


@dataclass(frozen=True)
class ScoreCount:
    """How many reviews of one target gave `score` (1–5) on `indicator`."""

    target_kind: str
    target: str | None
    indicator: str
    score: int
    reviews: int


@dataclass(frozen=True)
class PeriodFigures:
    period: str
    categories: tuple[CategoryCount, ...]
    answer_days: tuple[AnswerDays, ...]
    scores: tuple[ScoreCount, ...]

    @property
    def reviews(self) -> int:
        return sum(c.reviews for c in self.categories)


_PERIOD = bindparam("period")

# One pass over the period's reviews: the rows come back per (target, category, days to the first
# answer, closed), a few thousand at most, and are summed below into the two shapes reports read.
_REVIEWS = (
    select(
        reviews.c.target_kind,
        reviews.c.target,
        reviews.c.category,
        reviews.c.first_answer_days,
        cast(reviews.c.closed, Integer).label("closed"),
        func.count().label("reviews"),
    )
    .where(reviews.c.period == _PERIOD)
    .group_by(*(reviews.c[name] for name in ("target_kind", "target", "category", "first_answer_days", "closed")))
)

# review_scores repeats period and target so that a company's scores are counted from its index alone
# (the complaints service keeps a target for company reviews only). The rest, the union's own service
# and "other", both without a target, are told apart by their review row: a tenth of the rows, joined.
_COMPANY_SCORES = (
    select(review_scores.c.target, review_scores.c.indicator, review_scores.c.score, func.count().label("reviews"))
    .where(review_scores.c.period == _PERIOD, review_scores.c.target.is_not(None))
    .group_by(review_scores.c.target, review_scores.c.indicator, review_scores.c.score)
)
_OTHER_SCORES = (
    select(reviews.c.target_kind, review_scores.c.indicator, review_scores.c.score, func.count().label("reviews"))
    .select_from(review_scores.join(reviews, reviews.c.id == review_scores.c.review_id))
    .where(review_scores.c.period == _PERIOD, review_scores.c.target.is_(None))
    .group_by(reviews.c.target_kind, review_scores.c.indicator, review_scores.c.score)
)

_COUNT = select(func.count()).select_from(reviews).where(reviews.c.period == _PERIOD)


class Reports:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def count(self, period: str) -> int:
        """How many reviews a period has (a report of an empty period is refused before it is made)."""
        return int((await self.conn.execute(_COUNT, {"period": period})).scalar_one())

    async def figures(self, period: str) -> PeriodFigures:
        """Every count a satisfaction report of `period` (YYYY-MM) is made of."""
        args = {"period": period}
        categories: dict[tuple[str, str | None, str], list[int]] = {}
        days: dict[tuple[str, str | None, int], int] = {}
        for r in await self.conn.execute(_REVIEWS, args):
            n = int(r.reviews)
            counts = categories.setdefault((r.target_kind, r.target, r.category), [0, 0, 0])
            counts[0] += n
            if r.first_answer_days is not None:
                counts[1] += n
                key = (r.target_kind, r.target, int(r.first_answer_days))
                days[key] = days.get(key, 0) + n
            if r.closed:
                counts[2] += n
        scores = tuple(
            ScoreCount("company", r.target, r.indicator, int(r.score), int(r.reviews))
            for r in await self.conn.execute(_COMPANY_SCORES, args)
        ) + tuple(
            ScoreCount(r.target_kind, None, r.indicator, int(r.score), int(r.reviews))
            for r in await self.conn.execute(_OTHER_SCORES, args)
        )
        return PeriodFigures(
            period,
            tuple(CategoryCount(*key, *counts) for key, counts in categories.items()),
            tuple(AnswerDays(*key, n) for key, n in days.items()),
            scores,
        )
