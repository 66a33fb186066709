"""Tables. Times are UTC. Personal fields are kept to what joining needs; the phone number is stored
encrypted and found by a keyed hash, so a copy of the database alone does not list phone numbers."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no zone and would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use datetime.now(UTC)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_number", String(32), nullable=False, unique=True),
    Column("card_code", String(16), nullable=False, unique=True),
    Column("phone_hash", String(64), nullable=False, unique=True),
    Column("phone_enc", Text, nullable=False),
    Column("name", String(64), nullable=False),
    Column("platform", String(64), nullable=False),
    Column("work_kind", String(64), nullable=False),
    Column("source", String(64)),
    Column("joined_at", UTCDateTime(), nullable=False),
    # Broadcast notices are skipped while this is set (/mute); messages about their own claim, booking
    # or event sign-up are not notices and always come. The database's default only: a Python-side one
    # would send joining's INSERT down SQLAlchemy's slow path (storage/sqlite_direct.py `prepare`).
    Column("notices_muted", Boolean, nullable=False, server_default=false()),
)

identities = Table(
    "identities",
    metadata,
    Column("user_key", String(128), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("channel", String(16), nullable=False),
    Column("linked_at", UTCDateTime(), nullable=False),
    Column("unreachable", Boolean, nullable=False, default=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("notice_version", String(16), nullable=False),
    Column("agreed_at", UTCDateTime(), nullable=False),
)

staff = Table(
    "staff",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_key", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("user_key", String(128), primary_key=True),
    Column("flow", String(32)),
    Column("step", String(32)),
    Column("data", Text, nullable=False, default="{}"),
    Column("choices", Text, nullable=False, default="[]"),
    Column("version", Integer, nullable=False, default=0),
    Column("lang", String(8)),
    Column("expires_at", UTCDateTime()),
)

processed_updates = Table(
    "processed_updates",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("processed_at", UTCDateTime(), nullable=False, index=True),
    # The rendered answer, so a platform's retry of the same update gets the same answer. Cleared
    # after a short while by `Updates.prune`, since it may show the member's own details.
    Column("reply", Text),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(64)),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_key", String(128), nullable=False),
    # The rendered message (an `Outgoing` as JSON); cleared once delivered.
    Column("body", Text),
    Column("status", String(16), nullable=False, index=True),  # pending, sent, failed, unreachable
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("last_error", String(200)),
)

# Short-lived platform credentials shared by every process (the WeChat access token).
platform_tokens = Table(
    "platform_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Time-based work (reminders, retention, scheduled broadcasts, housekeeping), claimed by one runner at
# a time. A payload holds ids to look things up by, never personal data: `gigunion jobs list` shows it.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    # Optional and unique: scheduling the same key again replaces the job, and `cancel`/`move` find it.
    Column("key", String(128), unique=True),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, running, done, failed
    Column("due_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("claimed_by", String(64)),
    # A runner that dies mid-job stops renewing this; once it has passed, another runner takes the job.
    Column("lease_until", UTCDateTime()),
    Column("last_error", String(64)),  # the exception's type only: its text may carry user data
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_jobs_status_due_at", "status", "due_at"),
)

# Files people sent (photos, documents), kept on disk under their sha256 by `bot.services.media`. A row
# is made when a file is fetched, before its turn; the turn links it to its owner ("claim", "LP2026-…").
# Rows never linked are purged with their files. Ids are random: attachments must not be time-ordered.
media = Table(
    "media",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("mime", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("owner_kind", String(32)),
    Column("owner_id", String(64)),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Index("ix_media_owner", "owner_kind", "owner_id"),
)

# Which secret key the personal fields were written under: one row, its fingerprint (never the key), so
# a start with a missing or different key is refused instead of answering with a key that opens nothing.
keyring = Table(
    "keyring",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("fingerprint", String(64), nullable=False),
    Column("set_at", UTCDateTime(), nullable=False),
)

# Insurance claims (意外伤害及家财损失). Money is integer fen. Payout details and the ID number are
# Keyring-encrypted like members.phone_enc: a copy of the file alone does not list bank accounts. A
# claim changes state only by one conditional UPDATE on (status, version), see `storage.claims`.
claims = Table(
    "claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("type", String(32), nullable=False),
    Column("incident_date", Date, nullable=False),
    Column("description", Text, nullable=False),
    Column("claimed_fen", BigInteger, nullable=False),
    Column("approved_fen", BigInteger),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("incomplete", Boolean, nullable=False),
    Column("missing", Text, nullable=False),  # JSON list of checklist ids
    Column("info_note", Text),
    Column("payout_kind", String(16), nullable=False),
    Column("payout_holder_enc", Text, nullable=False),
    Column("payout_account_enc", Text, nullable=False),
    Column("id_number_enc", Text),
    Column("reason_code", String(32)),
    Column("reason_text", Text),
    Column("payment_ref", String(128)),
    Column("appealed", Boolean, nullable=False),
    Column("assignee", String(128)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_claims_status_created_at", "status", "created_at"),
)

claim_history = Table(
    "claim_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("claim_id", Integer, ForeignKey("claims.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("note", Text),
)

claim_documents = Table(
    "claim_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("claim_id", Integer, ForeignKey("claims.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("media_id", String(32), nullable=False),
    Column("item", String(32), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
)

# Consultation times counsellors publish, and members' bookings of them. A place is taken by one
# conditional UPDATE (`booked < capacity`), and the CHECK holds it even against a writer that forgets;
# a booking carries its slot's times so the overlap guard on a member's bookings needs no join.
slots = Table(
    "slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("counsellor", String(128), nullable=False, index=True),  # a staff user key
    Column("station", String(16)),  # a profile station index ("0"), "phone" or "video"
    Column("start_at", UTCDateTime(), nullable=False),
    Column("end_at", UTCDateTime(), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("booked", Integer, nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_slots_places"),
    Index("ix_slots_kind_start_at", "kind", "start_at"),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reference", String(16), nullable=False, unique=True),
    Column("slot_id", Integer, ForeignKey("slots.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("station", String(16)),
    Column("topic_enc", Text),  # Keyring-encrypted: only the counsellor reads it
    Column("status", String(16), nullable=False),
    Column("rating", Integer),
    Column("start_at", UTCDateTime(), nullable=False),
    Column("end_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("cancelled_by", String(128)),
    Index("ix_bookings_member_status_start", "member_id", "status", "start_at"),
)

# -- Anonymous complaints and reviews (职工点评) ------------------------------------------------------
# Nothing here links a complaint to its sender: no user key, member, phone, name or message id; ids are
# random (row order says nothing); times are days. The receipt code is kept only as a slow peppered hash,
# and the text is Keyring-encrypted. See `bot.services.complaints`.
complaints = Table(
    "complaints",
    metadata,
    Column("id", String(24), primary_key=True),  # random, never sequential or time-ordered
    Column("receipt_hash", String(64), nullable=False, unique=True),
    Column("target_kind", String(16), nullable=False),  # company, union, other
    Column("target", String(64)),  # the company's name (a profile platform), when target_kind is company
    Column("category", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # new, triaged, routed, answered, closed
    Column("version", Integer, nullable=False),
    Column("team", String(32)),  # the handling team it was routed to (分流), from config
    Column("outcome", String(32)),  # set when closed
    Column("description_enc", Text, nullable=False),
    Column("review_id", String(24), ForeignKey("reviews.id", ondelete="SET NULL")),
    Column("submitted_on", Date, nullable=False),
    Column("updated_on", Date, nullable=False),
    Column("closed_on", Date),
    Index("ix_complaints_status", "status"),
    # On SQLite, rows kept in the order of their random key rather than of a rowid, which would
    # count submissions in order for whoever holds a copy of the file.
    sqlite_with_rowid=False,
)

# The two-way anonymous thread: the worker's additions (pulled with the receipt code) and the union's replies.
complaint_messages = Table(
    "complaint_messages",
    metadata,
    Column("id", String(24), primary_key=True),  # random
    Column("complaint_id", String(24), ForeignKey("complaints.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),  # order within the complaint
    Column("author", String(8), nullable=False),  # worker, union
    Column("body_enc", Text, nullable=False),
    Column("on_day", Date, nullable=False),
    sqlite_with_rowid=False,
)

complaint_history = Table(
    "complaint_history",
    metadata,
    Column("id", String(24), primary_key=True),  # random
    Column("complaint_id", String(24), ForeignKey("complaints.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("note", String(64)),  # a category, team or outcome id: never free text
    Column("on_day", Date, nullable=False),
    sqlite_with_rowid=False,
)

# The anonymous figures satisfaction reports are made of: one row per complaint or review, kept after
# the complaint itself is deleted (retention). No text, no link back to anything but its period.
reviews = Table(
    "reviews",
    metadata,
    Column("id", String(24), primary_key=True),  # random
    Column("period", String(7), nullable=False),  # YYYY-MM, in the union's time zone
    Column("target_kind", String(16), nullable=False),
    Column("target", String(64)),
    Column("category", String(32), nullable=False),
    Column("first_answer_days", Integer),  # days from submission to the union's first reply
    Column("closed", Boolean, nullable=False),
    # Covering: a month's report reads its rows from the index alone (ids are random, so the rows of
    # one month are spread over the whole table).
    Index("ix_reviews_period", "period", "target_kind", "target", "category", "first_answer_days", "closed"),
    sqlite_with_rowid=False,
)

# One row per indicator rated (1 to 5); period and target repeated so a report reads one index only.
review_scores = Table(
    "review_scores",
    metadata,
    Column("review_id", String(24), ForeignKey("reviews.id", ondelete="CASCADE"), primary_key=True),
    Column("indicator", String(32), primary_key=True),
    Column("period", String(7), nullable=False),
    Column("target", String(64)),
    Column("score", Integer, nullable=False),
    CheckConstraint("score BETWEEN 1 AND 5", name="ck_review_scores_score"),
    Index("ix_review_scores_period", "period", "target", "indicator", "score"),
    sqlite_with_rowid=False,
)

# Secrets that belong to the deployment rather than to one key, stored Keyring-encrypted (re-encrypted
# by a key rotation): the receipt-code pepper. The database alone opens none of them.
deployment_secrets = Table(
    "deployment_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("value_enc", Text, nullable=False),
)

# -- Events and broadcasts ---------------------------------------------------------------------------
# A place at an event is taken by one conditional UPDATE (`taken < capacity`), the CHECK holds it even
# against a writer that forgets; past capacity a sign-up waits, and is promoted when a place frees.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("station", String(16)),  # a profile station index ("0"), or None with `place`
    Column("place", String(200)),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("signup_deadline", UTCDateTime(), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("taken", Integer, nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("taken >= 0 AND taken <= capacity", name="ck_events_places"),
)

event_signups = Table(
    "event_signups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # order of the waiting list
    Column("event_id", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # confirmed, waiting, cancelled
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("checked_in_at", UTCDateTime()),
    UniqueConstraint("event_id", "member_id", name="uq_event_signups_event_member"),
    Index("ix_event_signups_event_status", "event_id", "status"),
)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_by", String(128), nullable=False),  # a staff user key, or "cli:<os user>"
    Column("text", Text, nullable=False),
    Column("media_id", String(32)),  # an optional picture (the media table)
    Column("event_id", Integer, ForeignKey("events.id", ondelete="SET NULL")),  # a sign-up button
    Column("segment", Text, nullable=False),  # JSON: {} is every member
    Column("state", String(16), nullable=False),  # draft, scheduled, sending, paused, done, cancelled
    Column("version", Integer, nullable=False),
    Column("send_at", UTCDateTime()),
    Column("recipients", Integer, nullable=False),  # frozen at send time
    Column("skipped_muted", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
)

# The audience frozen at send time, one row per member. A row is marked sent only after the platform
# accepted the message: a sender killed mid-send leaves rows `sending`, resent on resume.
broadcast_recipients = Table(
    "broadcast_recipients",
    metadata,
    Column("broadcast_id", Integer, ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, primary_key=True),
    Column("user_key", String(128), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("status", String(16), nullable=False),  # queued, sending, sent, failed, unreachable
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("error", String(64)),  # the error's kind only
    Column("sent_at", UTCDateTime()),
    Index("ix_broadcast_recipients_due", "broadcast_id", "status", "next_attempt_at"),
)
