"""Membership: enrolling, the card, verifying a card, what is held about a member, and leaving."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import UnionProfile
from bot.privacy import mask_name, mask_phone
from bot.services.crypto import Keyring, format_card_code, normalize_card_code
from storage import Tx
from storage.members import Member, NewMember, unlinked_phone_hash

PRIVACY_NOTICE_VERSION = "2026-11"
LEFT_COUNTER = "members_left"
LEFT_PREFIX = "left-"  # the audit trail's name for a member who left


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
    created: bool  # False: that (platform-verified) phone already had a member, whom this identity now reaches


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
) -> Enrolment:
    """Make the member; or, when `link_existing` (the platform vouched that the phone is this
    person's) and the phone already has a member, let this identity reach that member.

    A typed number that is already a member's makes a member all the same, exactly as a fresh number
    would, with the number kept unlinked (`storage.members.UNLINKED_PHONE`) for staff to resolve: the
    other member is neither told nor touched, and the person typing learns nothing about them."""
    phone_hash = keyring.lookup_hash(app.phone)
    year = now.astimezone(ZoneInfo(profile.timezone)).year
    channel = user_key.split(":")[0]
    number = f"{profile.member_prefix}{year}{await tx.members.next_counter(f'member_number:{year}'):06d}"
    new = NewMember(
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
    member = await tx.members.create(new)
    unlinked = member is None
    if member is None:
        existing = await tx.members.by_phone_hash(phone_hash)
        if link_existing and existing is not None:
            await link_identity(tx, user_key, existing, now)
            return Enrolment(existing, created=False)
        # The same number and card this person would have had with a fresh phone: nothing tells them apart.
        member = await tx.members.create(replace(new, phone_hash=unlinked_phone_hash()))
        assert member is not None  # a random hash, and a member number nobody holds
    await tx.members.link(user_key, member.id, now)
    await tx.members.add_consent(member.id, app.consent_version, app.consent_at)
    await tx.audit.record(now, channel, "member.joined", member.member_number)
    if unlinked:
        await tx.audit.record(now, channel, "member.phone_unlinked", member.member_number)
    return Enrolment(member, created=True)


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


async def leave(tx: Tx, member: Member, now: datetime) -> str:
    """Delete the member's personal data; an anonymous count of leavers remains, and the audit trail
    about them (who looked them up, whose card was verified) under a pseudonym, which is returned to
    be shown to them once: with it they can later ask who looked at their data. It is random and kept
    nowhere else, so nothing in the database leads from it back to the member, or from them to it."""
    pseudonym = f"{LEFT_PREFIX}{secrets.token_hex(6)}"
    for identity in await tx.members.identities(member.id):
        await tx.sessions.delete(identity.user_key)
    await tx.audit.pseudonymise(member.member_number, pseudonym)
    await tx.members.delete(member.id)
    await tx.members.next_counter(LEFT_COUNTER)
    await tx.audit.record(now, "member", "member.left", pseudonym)
    return pseudonym


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
