"""review: users, sessions, edited values on decisions

Revision ID: 0003_review
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_review'
down_revision = '0002_llm'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_name', sa.String(length=100), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_name'], ['users.name'], ),
    sa.PrimaryKeyConstraint('id_hash')
    )
    # A plain ADD COLUMN (not a batch table copy) keeps the append-only triggers on decisions.
    op.add_column('decisions', sa.Column('edits', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('decisions', 'edits')
    op.drop_table('sessions')
    op.drop_table('users')
