"""匿名点评/投诉: what is kept and what is not -> target -> category -> ratings (optional, one tap each)
-> what happened -> pictures (optional) -> check -> submit, with a receipt code shown once.

Anyone may complain, member or not, and the flow is anonymous (`Flow(anonymous=True)`): nothing in it
can ask who the sender is, and the engine keeps no answer of its turns and scrubs the database when
the conversation ends. The draft lives in the session, every field encrypted under the deployment's
key (the company and the category next to the sender's user key would say enough); it is dropped
when the complaint is submitted, cancelled, left or timed out. Pictures are re-encoded without their
metadata by the media store, which does that for every anonymous flow.

No button label or payload carries anything the worker wrote or chose: the session keeps the offered
choices in clear, and those are the same for everyone at a step.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from bot.engine.flow import Flow, Turn
from bot.engine.messages import Kind, Refusal, Request, T
from bot.services.complaints import (
    CATEGORIES,
    ComplaintRefused,
    Draft,
    complaint_settings,
    format_receipt,
    local_today,
    submit,
)
from bot.services.media import EXPECT, expect_file, received

MAX_PICTURES = 4
SCORES = range(1, 6)
# The draft's fields in the session, each encrypted on its own (named `…_enc`, so that a key rotation
# re-encrypts a draft in progress: bot.services.secret_key).
TARGET_KIND, TARGET, CATEGORY, RATINGS = "tk_enc", "tg_enc", "cat_enc", "rt_enc"
DESCRIPTION, PICTURES = "desc_enc", "pics_enc"
RATING_AT = "ri"  # which indicator is being asked: a position, the same for everyone
FIXING = "fix"  # the description is being changed from the check: back to it afterwards
UNION, OTHER = "union", "other"

flow = Flow(
    "complain",
    commands=("complain",),
    words=("投诉", "匿名投诉", "点评", "匿名点评", "我要投诉", "complain", "complaint"),
    menu_label="complain.menu",
    anonymous=True,
)


# -- the draft, encrypted field by field ---------------------------------------------------------------
def put(turn: Turn, field: str, value: Any) -> None:
    turn.data[field] = turn.app.keyring.encrypt(json.dumps(value, ensure_ascii=False))


def got(turn: Turn, field: str, default: Any = None) -> Any:
    token = turn.data.get(field)
    return json.loads(turn.app.keyring.decrypt(token)) if token else default


def draft_of(turn: Turn) -> Draft:
    return Draft(
        target_kind=got(turn, TARGET_KIND, ""),
        target=got(turn, TARGET),
        category=got(turn, CATEGORY, ""),
        ratings={k: int(v) for k, v in got(turn, RATINGS, {}).items()},
        description=got(turn, DESCRIPTION, ""),
        media_ids=tuple(got(turn, PICTURES, [])),
    )


def _folded(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def target_words(turn: Turn, kind: str, target: str | None) -> str:
    if kind == "company" and target:
        return target
    return turn.app.locale.text(turn.lang, f"complain.target_{UNION if kind == UNION else OTHER}")


def category_words(turn: Turn, category: str) -> str:
    return turn.app.locale.text(turn.lang, f"complain.cat_{category}")


# -- what is kept and what is not ---------------------------------------------------------------------
@flow.start
async def start(turn: Turn, payload: str) -> None:
    turn.goto("intro")


@flow.ask("intro")
async def ask_intro(turn: Turn) -> None:
    turn.say("complain.intro", most=complaint_settings(turn.app).max_description)
    turn.button(T("complain.begin"), "go")
    turn.button(T("track.menu"), "track")  # following one up is one tap from here too (查询进度)
    turn.button(T("complain.not_now"), "no")


@flow.on("intro")
async def on_intro(turn: Turn) -> None:
    if turn.choice == "go":
        turn.goto("target")
    elif turn.choice == "track":
        await turn.begin("track")
    elif turn.choice == "no":
        turn.say("complain.left")
        turn.finish()
    else:
        turn.retry("complain.intro_choose")


# -- whom it is about ----------------------------------------------------------------------------------
@flow.ask("target")
async def ask_target(turn: Turn) -> None:
    turn.say("complain.ask_target")
    for name in turn.app.profile.platforms:
        turn.button(name, f"c:{name}")
    turn.button(T("complain.target_union"), UNION)
    turn.button(T("complain.target_other"), OTHER)


@flow.on("target")
async def on_target(turn: Turn) -> None:
    platforms = turn.app.profile.platforms
    choice = turn.choice or ""
    company = choice[2:] if choice.startswith("c:") else None
    if company is None and turn.text:  # a company typed by name, as it is written or folded
        company = next((p for p in platforms if _folded(p) == _folded(turn.text)), None)
    if company in platforms:
        put(turn, TARGET_KIND, "company")
        put(turn, TARGET, company)
    elif choice in (UNION, OTHER):
        put(turn, TARGET_KIND, choice)
        put(turn, TARGET, None)
    else:
        turn.retry("complain.unknown_target" if turn.text else "complain.choose_target")
        return
    turn.goto("category")


# -- what kind of problem -----------------------------------------------------------------------------
@flow.ask("category")
async def ask_category(turn: Turn) -> None:
    turn.say("complain.ask_category")
    for category in CATEGORIES:
        turn.button(T(f"complain.cat_{category}"), f"k:{category}")


@flow.on("category")
async def on_category(turn: Turn) -> None:
    category = (turn.choice or "").removeprefix("k:")
    if not (turn.choice or "").startswith("k:") or category not in CATEGORIES:
        turn.retry("complain.choose_category")
        return
    put(turn, CATEGORY, category)
    turn.data[RATING_AT] = 0
    turn.goto("rate" if complaint_settings(turn.app).indicators else "description")


# -- ratings, one indicator at a time ------------------------------------------------------------------
@flow.ask("rate")
async def ask_rate(turn: Turn) -> None:
    indicators = complaint_settings(turn.app).indicators
    at = min(int(turn.data.get(RATING_AT, 0)), len(indicators) - 1)
    turn.say(
        "complain.ask_rating",
        first=at == 0,
        n=at + 1,
        of=len(indicators),
        indicator=indicators[at].label(turn.lang),
    )
    for score in SCORES:  # first, so a typed "3" is the third option: 3 points
        # The indicator in the payload: a button of an earlier indicator's message is then stale.
        turn.button(T("complain.score", n=score), f"s:{at}:{score}")
    turn.button(T("complain.skip_one"), "skip")
    turn.button(T("complain.skip_all"), "none")


@flow.on("rate")
async def on_rate(turn: Turn) -> None:
    indicators = complaint_settings(turn.app).indicators
    at = min(int(turn.data.get(RATING_AT, 0)), len(indicators) - 1)
    choice = turn.choice or ""
    score = choice.rpartition(":")[2]
    if choice.startswith(f"s:{at}:") and score.isdigit() and int(score) in SCORES:
        ratings = got(turn, RATINGS, {})
        ratings[indicators[at].id] = int(score)
        put(turn, RATINGS, ratings)
    elif choice == "none":
        turn.goto("description")
        return
    elif choice != "skip":
        turn.retry("complain.bad_score")
        return
    if at + 1 < len(indicators):
        turn.data[RATING_AT] = at + 1
        turn.goto("rate")
    else:
        turn.goto("description")


# -- what happened ------------------------------------------------------------------------------------
@flow.ask("description")
async def ask_description(turn: Turn) -> None:
    turn.say("complain.ask_description", most=complaint_settings(turn.app).max_description)


@flow.on("description")
async def on_description(turn: Turn) -> None:
    most = complaint_settings(turn.app).max_description
    if turn.incoming.kind is not Kind.TEXT:
        turn.retry("complain.description_words")
        return
    text = turn.text
    if not text:
        turn.retry("complain.description_empty")
        return
    if len(text) > most:
        turn.retry("complain.description_long", got=len(text), most=most)
        return
    put(turn, DESCRIPTION, text)
    turn.goto("review" if turn.data.pop(FIXING, False) else "pictures")


# -- pictures, if any ---------------------------------------------------------------------------------
@flow.ask("pictures")
async def ask_pictures(turn: Turn) -> None:
    have = len(got(turn, PICTURES, []))
    if have < MAX_PICTURES:
        expect_file(turn, strip_metadata=True)  # and the store strips them anyway in an anonymous flow
    else:  # full: one more would be fetched and stored only to be refused
        turn.data.pop(EXPECT, None)
    turn.say("complain.ask_pictures", have=have, most=MAX_PICTURES)
    turn.request(Request.PHOTO)
    turn.button(T("complain.pictures_done" if have else "complain.no_pictures"), "skip")  # 跳过, 下一步 too


@flow.on("pictures")
async def on_pictures(turn: Turn) -> None:
    if turn.choice == "skip":
        turn.goto("review")
        return
    if turn.incoming.kind not in (Kind.PHOTO, Kind.DOCUMENT):
        turn.retry("complain.pictures_hint")
        return
    pictures = got(turn, PICTURES, [])
    if len(pictures) >= MAX_PICTURES:
        turn.retry("complain.too_many_pictures", most=MAX_PICTURES)
        return
    media = turn.incoming.media
    if media is not None and media.refused is Refusal.WRONG_TYPE:
        turn.retry("complain.pictures_only")
        return
    stored = received(turn)
    if stored is None:
        return
    pictures.append(stored.id)
    put(turn, PICTURES, pictures)
    turn.retry("complain.picture_received", count=len(pictures), most=MAX_PICTURES)


# -- check, then send ----------------------------------------------------------------------------------
@flow.ask("review")
async def ask_review(turn: Turn) -> None:
    draft = draft_of(turn)
    labels = {i.id: i.label(turn.lang) for i in complaint_settings(turn.app).indicators}
    turn.say(
        "complain.review",
        target=target_words(turn, draft.target_kind, draft.target),
        category=category_words(turn, draft.category),
        ratings=[{"label": labels.get(k, k), "score": v} for k, v in draft.ratings.items()],
        description=draft.description,
        pictures=len(draft.media_ids),
    )
    turn.button(T("complain.send"), "send")
    turn.button(T("complain.change_description"), "describe")
    turn.button(T("complain.start_over"), "over")


@flow.on("review")
async def on_review(turn: Turn) -> None:
    if turn.choice == "describe":
        turn.data[FIXING] = True
        turn.goto("description")
    elif turn.choice == "over":
        turn.data.clear()
        turn.goto("target")
    elif turn.choice == "send":
        await send(turn)
    else:
        turn.retry("complain.review_choose")


async def send(turn: Turn) -> None:
    try:
        _complaint, code = await submit(turn.app, turn.tx, draft_of(turn), local_today(turn.app, turn.now))
    except ComplaintRefused as e:
        turn.retry(REFUSALS.get(e.reason, "complain.refused"))
        return
    # Shown this once and kept nowhere: not in the session (wiped here), nor with the turn's marker.
    turn.say("complain.sent", code=format_receipt(code))
    turn.finish()


# What the service may still refuse at the last moment (the union changed its settings meanwhile).
REFUSALS = {
    "unknown_target": "complain.refused_target",
    "unknown_category": "complain.refused_category",
    "bad_rating": "complain.refused_rating",
    "too_long": "complain.refused_long",
    "empty": "complain.description_empty",
}
