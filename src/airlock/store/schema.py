"""Airlock's own tables (SQLAlchemy Core, so per-chunk writes go out as one executemany).

The audit trail is ``audit_events`` plus the rows that carry their own history: plans, step
outcomes (every tool call's result per chunk), proposals with their verdicts, decisions, the
effects ledger and dead letters. ``audit_events`` and ``decisions`` are append-only (enforced by
triggers in the migration).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

UTCDateTime = sa.DateTime(timezone=True)
LIVE_RUN = "status IN ('running', 'waiting_review') AND dry_run = false"

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("playbook", sa.String(200), nullable=False),
    sa.Column("plan_hash", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_by", sa.String(200), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("input_path", sa.Text),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("record_count", sa.Integer, nullable=False),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("chunk_count", sa.Integer, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("review_timeout", sa.Float, nullable=False, default=0.0),
    sa.Column("spec_hashes", sa.JSON, nullable=False),
    sa.Column("prefect_flow_run_id", sa.String(36)),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("report", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Index("ix_runs_status_lease", "status", "lease_expires_at"),
    # One live run per plan and input, enforced by the database so two submissions at once cannot
    # both start (0004).
    sa.Index("uq_runs_live", "plan_hash", "input_hash", unique=True,
             sqlite_where=sa.text(LIVE_RUN), postgresql_where=sa.text(LIVE_RUN)),
)

plans = sa.Table(
    "plans", metadata,
    sa.Column("hash", sa.String(40), primary_key=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

run_records = sa.Table(
    "run_records", metadata,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("record_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("chunk_no", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_run_records_chunk", "run_id", "chunk_no"),
)

step_outcomes = sa.Table(
    "step_outcomes", metadata,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("step_id", sa.String(100), primary_key=True),
    sa.Column("chunk_no", sa.Integer, primary_key=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

proposals = sa.Table(
    "proposals", metadata,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("record_id", sa.String(200), primary_key=True),
    sa.Column("chunk_no", sa.Integer, nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Column("proposal_hash", sa.String(40), nullable=False),
    sa.Column("verdict", sa.String(10)),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_proposals_outcome", "run_id", "outcome"),
)

review_items = sa.Table(
    "review_items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("record_id", sa.String(200), nullable=False),
    sa.Column("proposal_hash", sa.String(40), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("risk", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("committed", sa.Boolean, nullable=False, default=False),
    sa.UniqueConstraint("run_id", "record_id", name="uq_review_items_record"),
    sa.Index("ix_review_items_status", "status", "risk"),
)

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id"), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("record_id", sa.String(200), nullable=False),
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("proposal_hash", sa.String(40), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("at", UTCDateTime, nullable=False),
    # Values a reviewer typed in place of the proposed ones (``e`` on the review page), if any.
    sa.Column("edits", sa.JSON),
)

effects = sa.Table(
    "effects", metadata,
    sa.Column("idempotency_key", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("record_id", sa.String(200), nullable=False),
    sa.Column("write_id", sa.String(100), nullable=False),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("tool", sa.String(100), nullable=False),
    sa.Column("values_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # What an applied write replaced, kept so that it can be compensated (0004).
    sa.Column("before_image", sa.JSON),
    # A compensation's row names the key it undoes; a redo after a compensation names the key it replaces.
    sa.Column("compensates", sa.String(64)),
    sa.Column("supersedes", sa.String(64)),
    sa.Index("ix_effects_run", "run_id", "status"),
)

dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("step_id", sa.String(100)),
    sa.Column("chunk_no", sa.Integer),
    sa.Column("record_ids", sa.JSON, nullable=False),
    sa.Column("tool", sa.String(100)),
    sa.Column("spec_hash", sa.String(40)),
    sa.Column("error_type", sa.String(200), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("retryable", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.JSON, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("resolved_by", sa.String(200)),
    sa.Column("resolution", sa.Text),
    sa.Index("ix_dead_letters_status", "status", "run_id"),
)

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False, default=""),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_audit_run", "run_id", "id"),
)

# Reviewers and operators. Only a hash of each token is kept: a leaked store reveals no token.
users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

# Review page sessions, keyed by the hash of the cookie value; the CSRF token is per session.
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

APPEND_ONLY_TABLES = ("audit_events", "decisions")

# The model as planner (airlock.llm): every paid call's tokens and cost, and every planning
# conversation (accepted, repaired, fallen back or dead-lettered). Both append-only.
llm_usage = sa.Table(
    "llm_usage", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("step_id", sa.String(100)),
    sa.Column("chunk_no", sa.Integer),
    sa.Column("purpose", sa.String(100), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("cache_read_tokens", sa.Integer, nullable=False),
    sa.Column("cache_write_tokens", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Index("ix_llm_usage_run", "run_id", "step_id"),
)

plan_conversations = sa.Table(
    "plan_conversations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("planner", sa.String(240), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("plan_hash", sa.String(40)),
    sa.Column("problems", sa.JSON, nullable=False),
    sa.Column("unsupported", sa.JSON, nullable=False),
    sa.Column("conversation", sa.JSON, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Index("ix_plan_conversations_status", "status", "id"),
)

