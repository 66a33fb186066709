"""Membership: enrolling, the card, verifying a card, what is held about a member, and leaving."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import UnionProfile
from bot.privacy import mask_name, mask_phone
from bot.services.crypto import Keyring, format_card_code, normalize_card_code
from storage import Tx
from storage.members import Member, NewMember

PRIVACY_NOTICE_VERSION = "2026-11"
LEFT_COUNTER = "members_left"


@dataclass(frozen=True)
class Application:
    """What a person gave while joining, before they are a member."""

    phone: str
    name: str
    platform: str
    work_kind: str
    source: str | None
    consent_version: str
    consent_at: datetime


@dataclass(frozen=True)
class Enrolment:
    member: Member
    created: bool  # False: that phone already had a member, whom this identity now reaches


def local_date(profile: UnionProfile, at: datetime) -> str:
    return at.astimezone(ZoneInfo(profile.timezone)).strftime("%Y-%m-%d")


async def enroll(
    tx: Tx,
    keyring: Keyring,
    profile: UnionProfile,
    user_key: str,
    app: Application,
    now: datetime,
    *,
    link_existing: bool,
) -> Enrolment | None:
    """Make the member, or find the one with that phone. An existing member is linked to this identity
    only when `link_existing` (the phone was shown to be this person's); otherwise None."""
    phone_hash = keyring.lookup_hash(app.phone)
    year = now.astimezone(ZoneInfo(profile.timezone)).year
    # The phone was checked at the phone step; should another identity have joined with it since,
    # the insert does nothing (and this number stays unused).
    number = f"{profile.member_prefix}{year}{await tx.members.next_counter(f'member_number:{year}'):06d}"
    member = await tx.members.create(
        NewMember(
            member_number=number,
            card_code=keyring.card_code(number),
            phone_hash=phone_hash,
            phone_enc=keyring.encrypt(app.phone),
            name=app.name,
            platform=app.platform,
            work_kind=app.work_kind,
            source=app.source,
            joined_at=now,
        )
    )
    if member is not None:
        await tx.members.link(user_key, member.id, now)
        await tx.members.add_consent(member.id, app.consent_version, app.consent_at)
        await tx.audit.record(now, user_key.split(":")[0], "member.joined", member.member_number)
        return Enrolment(member, created=True)
    existing = await tx.members.by_phone_hash(phone_hash)
    if existing is None or not link_existing:
        return None
    await link_identity(tx, user_key, existing, now)
    return Enrolment(existing, created=False)


async def link_identity(tx: Tx, user_key: str, member: Member, now: datetime) -> None:
    """Let one more channel identity reach a member (the same person, shown by their own phone)."""
    await tx.members.link(user_key, member.id, now)
    await tx.audit.record(now, user_key.split(":")[0], "member.identity_linked", member.member_number)


def card_context(member: Member, keyring: Keyring, profile: UnionProfile, lang: str) -> dict:
    kind = profile.work_kind(member.work_kind)
    return {
        "union": profile.name(lang),
        "name": member.name,
        "number": member.member_number,
        "platform": member.platform,
        "work_kind": kind.label(lang) if kind else member.work_kind,
        "joined": local_date(profile, member.joined_at),
        "benefits": profile.benefits(lang) or [],
        "code": format_card_code(member.card_code),
    }


@dataclass(frozen=True)
class CardCheck:
    genuine: bool
    number: str = ""
    masked_name: str = ""
    masked_phone: str = ""
    joined: str = ""


async def verify_card(tx: Tx, keyring: Keyring, profile: UnionProfile, typed: str) -> CardCheck:
    code = normalize_card_code(typed)
    member = await tx.members.by_card_code(code) if len(code) == 8 else None
    if member is None or keyring.card_code(member.member_number) != code:
        return CardCheck(False)
    return CardCheck(
        True,
        member.member_number,
        mask_name(member.name),
        mask_phone(keyring.decrypt(member.phone_enc)),
        local_date(profile, member.joined_at),
    )


async def held_data(tx: Tx, keyring: Keyring, profile: UnionProfile, member: Member, lang: str) -> dict:
    """Everything kept about a member, for them to see (sensitive values masked)."""
    identities = await tx.members.identities(member.id)
    consents = await tx.members.consents(member.id)
    return {
        **card_context(member, keyring, profile, lang),
        "phone": mask_phone(keyring.decrypt(member.phone_enc)),
        "source": member.source,
        "identities": [i.channel for i in identities],
        "consents": [{"version": c.notice_version, "date": local_date(profile, c.agreed_at)} for c in consents],
    }


async def leave(tx: Tx, member: Member, now: datetime) -> None:
    """Delete the member's personal data; only an anonymous count of leavers remains."""
    for identity in await tx.members.identities(member.id):
        await tx.sessions.delete(identity.user_key)
    await tx.audit.forget_subject(member.member_number)
    await tx.members.delete(member.id)
    await tx.members.next_counter(LEFT_COUNTER)
    await tx.audit.record(now, "member", "member.left")


def member_summary(member: Member, keyring: Keyring, profile: UnionProfile) -> dict:
    """A member as staff tools show them: identifying values masked."""
    lang = profile.default_language
    kind = profile.work_kind(member.work_kind)
    return {
        "number": member.member_number,
        "name": mask_name(member.name),
        "phone": mask_phone(keyring.decrypt(member.phone_enc)),
        "platform": member.platform,
        "work_kind": kind.label(lang) if kind else member.work_kind,
        "source": member.source,
        "joined": local_date(profile, member.joined_at),
    }
