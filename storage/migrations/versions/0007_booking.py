"""consultation booking: slots and bookings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("counsellor", sa.String(length=128), nullable=False),
        sa.Column("station", sa.String(length=16), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_slots_places"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slots")),
    )
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slots_counsellor"), ["counsellor"], unique=False)
        batch_op.create_index("ix_slots_kind_start_at", ["kind", "start_at"], unique=False)
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("station", sa.String(length=16), nullable=True),
        sa.Column("topic_enc", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], name=op.f("fk_bookings_slot_id_slots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_bookings_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("reference", name=op.f("uq_bookings_reference")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookings_slot_id"), ["slot_id"], unique=False)
        batch_op.create_index("ix_bookings_member_status_start", ["member_id", "status", "start_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_member_status_start")
        batch_op.drop_index(batch_op.f("ix_bookings_slot_id"))
    op.drop_table("bookings")
    with op.batch_alter_table("slots", schema=None) as batch_op:
        batch_op.drop_index("ix_slots_kind_start_at")
        batch_op.drop_index(batch_op.f("ix_slots_counsellor"))
    op.drop_table("slots")
