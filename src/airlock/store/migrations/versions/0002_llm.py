"""the model as planner: llm_usage and plan_conversations (both append-only)

Revision ID: 0002_llm
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_llm'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('llm_usage',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('step_id', sa.String(length=100), nullable=True),
    sa.Column('chunk_no', sa.Integer(), nullable=True),
    sa.Column('purpose', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('cache_read_tokens', sa.Integer(), nullable=False),
    sa.Column('cache_write_tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('llm_usage', schema=None) as batch_op:
        batch_op.create_index('ix_llm_usage_run', ['run_id', 'step_id'], unique=False)
    op.create_table('plan_conversations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('planner', sa.String(length=240), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('plan_hash', sa.String(length=40), nullable=True),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.Column('unsupported', sa.JSON(), nullable=False),
    sa.Column('conversation', sa.JSON(), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('plan_conversations', schema=None) as batch_op:
        batch_op.create_index('ix_plan_conversations_status', ['status', 'id'], unique=False)
    for table in ('llm_usage', 'plan_conversations'):
        _append_only(table)


def downgrade() -> None:
    for table in ('llm_usage', 'plan_conversations'):
        _drop_append_only(table)
    with op.batch_alter_table('plan_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_conversations_status')
    op.drop_table('plan_conversations')
    with op.batch_alter_table('llm_usage', schema=None) as batch_op:
        batch_op.drop_index('ix_llm_usage_run')
    op.drop_table('llm_usage')


def _append_only(table: str) -> None:
    """Usage and planning conversations are audit: added to, never changed or removed."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION airlock_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION airlock_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        return
    for action in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
