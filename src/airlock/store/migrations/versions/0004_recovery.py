"""recovery: before-images and compensation links in the effects ledger

Revision ID: 0004_recovery
Revises: 0001
Create Date: 2026-11-27 18:00:00
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = "0004_recovery"
down_revision = "0003_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("effects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("before_image", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("compensates", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("supersedes", sa.String(length=64), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_status_lease", ["status", "lease_expires_at"], unique=False)
    # Runs left "running" by a process that died before this version could say so are crashed; two
    # of them over the same plan and input would otherwise stop the unique index below.
    runs = sa.table("runs", sa.column("status", sa.String), sa.column("error", sa.Text),
                    sa.column("lease_expires_at", sa.DateTime(timezone=True)))
    op.execute(runs.update().where(
        runs.c.status.in_(["running", "waiting_review"]),
        sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at < datetime.now(UTC)),
    ).values(status="crashed", error="crashed: its lease had run out when the store was upgraded (0004)"))
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
