"""一键入会: consent -> phone -> name -> platform -> kind of work -> check -> member and card.

Consent is a gate of its own; the four answers are a form (`bot.engine.forms`), which gives their
order, the summary and "change X". Nothing is written outside the session until the summary is
confirmed. Declining consent deletes the session, so a person who says no leaves nothing behind.

No membership oracle. Anyone can type any phone number, so what follows a typed number must not
depend on whether it is a member's: otherwise an employer could type a rider's number and learn
whether they joined the union. A typed number is therefore never looked up at the phone step, and at
the confirmation a typed number that is already a member's makes a member all the same, with the
same kind of number, card and words a fresh number gets (`enroll`); the number is kept unlinked for
staff to resolve, and the member it belongs to is neither told nor touched. We chose this over "your
card is ready once the number is confirmed" because a WeChat rider can only type the number: holding
every typed join for staff would end the one-minute join there. What it costs: a real member who
types their own number on a new account gets a second membership until staff merge the two; the
closing words of every typed join tell them how to ask (`join.phone_help`).

Only a number the platform vouches for (Telegram's shared contact whose owner is the sender) links
this identity to the member who has it, as it is the sender's own number.

Typed numbers are also rate-limited (`PhoneAttempts`), per identity and overall, in memory: a
restart forgets the counts and each process keeps its own, which is enough to slow a script down.
"""

import weakref
from collections import Counter, OrderedDict
from datetime import datetime, timedelta

from bot.engine.flow import Flow, Turn
from bot.engine.forms import Field, Form
from bot.engine.messages import Kind, Request, T
from bot.flows.card import is_member, show_card
from bot.privacy import mask_phone
from bot.services.membership import PRIVACY_NOTICE_VERSION, Application, enroll, link_identity
from bot.validation import mainland_mobile, name_from_profile, person_name, short_answer, source_code
from storage import Database


async def not_member(turn: Turn) -> bool:
    return not await is_member(turn)


flow = Flow(
    "join",
    commands=("join",),
    words=("入会", "加入工会", "我要入会", "join"),
    menu_label="menu.join",
    visible=not_member,
)


def _phone(turn: Turn) -> str:
    return turn.app.keyring.decrypt(turn.data["phone_enc"])


@flow.start
async def start(turn: Turn, payload: str) -> None:
    if await is_member(turn):
        turn.say("join.already_member")
        await show_card(turn)
        turn.finish()
        return
    turn.data["source"] = source_code(payload)
    turn.say("join.welcome", union=turn.app.profile.name(turn.lang))
    turn.goto("consent")


# -- consent -------------------------------------------------------------------------------------------
@flow.ask("consent")
async def ask_consent(turn: Turn) -> None:
    turn.say("join.privacy", version=PRIVACY_NOTICE_VERSION)
    turn.button(T("join.agree"), "agree")
    turn.button(T("join.decline"), "decline")


@flow.on("consent")
async def on_consent(turn: Turn) -> None:
    if turn.choice == "agree":
        turn.data["consent_at"] = turn.now.isoformat()
        await form.start(turn)
    elif turn.choice == "decline":
        turn.say("join.declined")
        turn.finish()
        turn.forget_session = True
    else:
        turn.retry("join.consent_hint")


# -- phone -----------------------------------------------------------------------------------------------
PER_IDENTITY = 5  # different typed numbers one identity may give in a WINDOW
OVERALL = 500  # different (identity, typed number) pairs everyone together may give in a WINDOW
WINDOW = timedelta(hours=1)


class PhoneAttempts:
    """The different numbers typed at the phone step in the last WINDOW, per identity and in all.

    Giving the same number again is not a new attempt (a turn may be run again, a rider may go back
    and forth). Kept in memory, per running bot: a restart forgets it and each process counts its own.
    The numbers are held as keyed hashes, never in clear."""

    def __init__(self, per_identity: int = PER_IDENTITY, overall: int = OVERALL, window: timedelta = WINDOW) -> None:
        self.per_identity, self.overall, self.window = per_identity, overall, window
        self._given: OrderedDict[tuple[str, str], datetime] = OrderedDict()  # oldest first
        self._per_user: Counter[str] = Counter()

    def refusal(self, user_key: str, phone_hash: str, now: datetime) -> str | None:
        """None when this number may be taken (and it is counted), else the locale key to answer with."""
        self._forget_before(now - self.window)
        if (user_key, phone_hash) in self._given:
            return None
        if self._per_user[user_key] >= self.per_identity:
            return "join.phone_too_many"
        if len(self._given) >= self.overall:
            return "join.phone_busy"
        self._given[(user_key, phone_hash)] = now
        self._per_user[user_key] += 1
        return None

    def _forget_before(self, cutoff: datetime) -> None:
        while self._given:
            (user_key, phone_hash), at = next(iter(self._given.items()))
            if at > cutoff:
                return
            del self._given[(user_key, phone_hash)]
            self._per_user[user_key] -= 1
            if self._per_user[user_key] <= 0:
                del self._per_user[user_key]


_attempts: weakref.WeakKeyDictionary[Database, PhoneAttempts] = weakref.WeakKeyDictionary()


def phone_attempts(db: Database) -> PhoneAttempts:
    """The counts of the bot running on `db` (tests run several bots in one process)."""
    if db not in _attempts:
        _attempts[db] = PhoneAttempts()
    return _attempts[db]


async def on_phone(turn: Turn) -> None:
    inc = turn.incoming
    if inc.kind is Kind.CONTACT and inc.contact is not None:
        if inc.contact.owner_id is not None and inc.contact.owner_id != inc.user_id:
            turn.retry("join.contact_not_own")
            return
        raw, verified = inc.contact.phone, inc.contact.owner_id is not None
        offered = inc.contact.name
    elif inc.kind is Kind.TEXT and turn.text:
        raw, verified, offered = turn.text, False, None
    else:
        turn.retry("join.phone_hint")
        return
    phone = mainland_mobile(raw)
    if phone is None:
        turn.retry("join.phone_invalid")
        return
    phone_hash = turn.app.keyring.lookup_hash(phone)
    if verified:
        # The sender's own number, vouched for by the platform: finding their membership tells them
        # nothing about anyone else. A typed number is not looked up at all (see the module's doc).
        existing = await turn.tx.members.by_phone_hash(phone_hash)
        if existing is not None:
            await link_identity(turn.tx, turn.user_key, existing, turn.now)
            turn.know_member(existing)
            turn.say("join.linked")
            await show_card(turn)
            turn.finish()
            return
    else:
        refusal = phone_attempts(turn.app.db).refusal(turn.user_key, phone_hash, turn.now)
        if refusal is not None:
            turn.retry(refusal)
            return
    # Kept encrypted even in the session: a half-finished join must not leave a number in clear.
    turn.data.update(phone_enc=turn.app.keyring.encrypt(phone), phone_verified=verified)
    if name_from_profile(offered):
        turn.data.setdefault("offered_name", name_from_profile(offered))
    await form.next(turn)


def show_phone(turn: Turn) -> str:
    return mask_phone(_phone(turn))


# -- name --------------------------------------------------------------------------------------------------
async def ask_name(turn: Turn) -> None:
    offered = turn.data.get("offered_name") or name_from_profile(turn.incoming.display_name)
    if offered:
        turn.data["offered_name"] = offered
        turn.say("join.ask_name_offered", name=offered)
        turn.button(offered, "use_offered")
    else:
        turn.say("join.ask_name")


def offered_name(turn: Turn, choice: str) -> str | None:
    return turn.data.get("offered_name") if choice == "use_offered" else None


# -- platform ------------------------------------------------------------------------------------------
async def ask_platform(turn: Turn) -> None:
    turn.say("join.ask_platform")
    for i, platform in enumerate(turn.app.profile.platforms):
        turn.button(platform, f"p{i}")
    turn.button(T("join.platform_other"), "other")


async def on_platform(turn: Turn) -> None:
    platforms = turn.app.profile.platforms
    if turn.choice == "other":
        turn.goto("platform_other")
    elif turn.choice and turn.choice[1:].isdigit() and int(turn.choice[1:]) < len(platforms):
        turn.data["platform"] = platforms[int(turn.choice[1:])]
        await form.next(turn)
    else:
        turn.retry("join.choose_platform")


@flow.ask("platform_other")
async def ask_platform_other(turn: Turn) -> None:
    turn.say("join.ask_platform_other")


@flow.on("platform_other")
async def on_platform_other(turn: Turn) -> None:
    platform = short_answer(turn.text)
    if platform is None:
        turn.retry("join.platform_invalid")
        return
    turn.data["platform"] = platform
    await form.next(turn)


# -- kind of work ---------------------------------------------------------------------------------------
async def ask_work_kind(turn: Turn) -> None:
    turn.say("join.ask_work_kind")
    for kind in turn.app.profile.work_kinds:
        turn.button(kind.label(turn.lang), f"k:{kind.id}")


def picked_work_kind(turn: Turn, choice: str) -> str | None:
    kind_id = choice.removeprefix("k:")
    return kind_id if turn.app.profile.work_kind(kind_id) is not None else None


def show_work_kind(turn: Turn) -> str:
    kind = turn.app.profile.work_kind(turn.data["work_kind"])
    return kind.label(turn.lang) if kind else turn.data["work_kind"]


# -- check and join ----------------------------------------------------------------------------------
async def _join(turn: Turn) -> None:
    d, app = turn.data, turn.app
    application = Application(
        phone=_phone(turn),
        name=d["name"],
        platform=d["platform"],
        work_kind=d["work_kind"],
        source=d.get("source"),
        consent_version=PRIVACY_NOTICE_VERSION,
        consent_at=datetime.fromisoformat(d["consent_at"]),
    )
    verified = bool(d.get("phone_verified"))
    done = await enroll(turn.tx, app.keyring, app.profile, turn.user_key, application, turn.now, link_existing=verified)
    turn.know_member(done.member)
    turn.say("join.welcome_member" if done.created else "join.linked")
    await show_card(turn)
    if not verified:
        # Said after every typed number, a member's or not, so it tells nobody which it was.
        turn.say("join.phone_help")
    turn.finish()


form = Form(
    flow,
    [
        # Kept encrypted (`phone_enc`) and shown masked: see `on_phone`.
        Field(
            "phone",
            ask="join.ask_phone",
            request=Request.CONTACT,
            on=on_phone,
            key="phone_enc",
            show=show_phone,
            change=T("join.fix_phone"),
        ),
        Field(
            "name",
            ask=ask_name,
            pick=offered_name,
            parse=person_name,
            invalid="join.name_invalid",
            change=T("join.fix_name"),
        ),
        Field("platform", ask=ask_platform, on=on_platform, change=T("join.fix_platform")),
        Field(
            "work_kind",
            ask=ask_work_kind,
            pick=picked_work_kind,
            invalid="join.choose_work_kind",
            show=show_work_kind,
            change=T("join.fix_work_kind"),
        ),
    ],
    summary="join.summary",
    confirm=T("join.confirm"),
    on_confirm=_join,
)
