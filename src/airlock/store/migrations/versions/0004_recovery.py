"""recovery: before-images and compensation links in the effects ledger

Revision ID: 0004_recovery
Revises: 0001
Create Date: 2026-11-27 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_recovery"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("effects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("before_image", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("compensates", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("supersedes", sa.String(length=64), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_status_lease", ["status", "lease_expires_at"], unique=False)
    # One live run per plan and input, so two submissions at once cannot both start.
    live = sa.text("status IN ('running', 'waiting_review') AND dry_run = false")
    op.create_index("uq_runs_live", "runs", ["plan_hash", "input_hash"], unique=True,
                    sqlite_where=live, postgresql_where=live)


def downgrade() -> None:
    op.drop_index("uq_runs_live", table_name="runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status_lease")
    with op.batch_alter_table("effects", schema=None) as batch_op:
        batch_op.drop_column("supersedes")
        batch_op.drop_column("compensates")
        batch_op.drop_column("before_image")
