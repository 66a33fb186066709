"""insurance claims

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("incident_date", sa.Date(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("claimed_fen", sa.BigInteger(), nullable=False),
        sa.Column("approved_fen", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("incomplete", sa.Boolean(), nullable=False),
        sa.Column("missing", sa.Text(), nullable=False),
        sa.Column("info_note", sa.Text(), nullable=True),
        sa.Column("payout_kind", sa.String(length=16), nullable=False),
        sa.Column("payout_holder_enc", sa.Text(), nullable=False),
        sa.Column("payout_account_enc", sa.Text(), nullable=False),
        sa.Column("id_number_enc", sa.Text(), nullable=True),
        sa.Column("reason_code", sa.String(length=32), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("payment_ref", sa.String(length=128), nullable=True),
        sa.Column("appealed", sa.Boolean(), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_claims_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("number", name=op.f("uq_claims_number")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_member_id"), ["member_id"], unique=False)
        batch_op.create_index("ix_claims_status_created_at", ["status", "created_at"], unique=False)
    for table in ("claim_history", "claim_documents"):
        columns = (
            [
                sa.Column("at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("actor", sa.String(length=128), nullable=False),
                sa.Column("from_status", sa.String(length=16), nullable=True),
                sa.Column("to_status", sa.String(length=16), nullable=False),
                sa.Column("note", sa.Text(), nullable=True),
            ]
            if table == "claim_history"
            else [
                sa.Column("media_id", sa.String(length=32), nullable=False),
                sa.Column("item", sa.String(length=32), nullable=False),
                sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
            ]
        )
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("claim_id", sa.Integer(), nullable=False),
            *columns,
            sa.ForeignKeyConstraint(
                ["claim_id"], ["claims.id"], name=op.f(f"fk_{table}_claim_id_claims"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_claim_id"), ["claim_id"], unique=False)


def downgrade() -> None:
    op.drop_table("claim_documents")
    op.drop_table("claim_history")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_status_created_at")
        batch_op.drop_index(batch_op.f("ix_claims_member_id"))
    op.drop_table("claims")
