"""Tables of guidance-tts (SQLAlchemy Core); migrations/versions/0002 creates them, 0003 and 0004 amend
them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Audio bytes live in the database so that replicas are stateless; rows are content-addressed per tenant.
synthesized_audio = sa.Table(
    "synthesized_audio",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("cache_key", sa.String(64), primary_key=True),
    sa.Column("mulaw_wav", sa.LargeBinary, nullable=False),
    sa.Column("pcm16_wav", sa.LargeBinary, nullable=False),
    sa.Column("pcm16_sample_rate", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

audio_files = sa.Table(
    "audio_files",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("system", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trim_silence", sa.Boolean, nullable=False, server_default=sa.false()),  # migration 0003
    sa.UniqueConstraint("tenant_id", "name", name="uq_audio_files_tenant_name"),
    sa.ForeignKeyConstraint(
        ["tenant_id", "cache_key"],
        ["synthesized_audio.tenant_id", "synthesized_audio.cache_key"],
        name="fk_audio_files_audio",
    ),
)

original_guidances = sa.Table(
    "original_guidances",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("speech_synthesis", sa.Boolean, nullable=False),
    sa.Column("audio_file_id", sa.String(36), sa.ForeignKey("audio_files.id"), nullable=False),
    sa.Column("system", sa.Boolean, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_original_guidances_tenant_name"),
)

# Read model of who plays which guidance (e.g. published routing flows), replaced per user and version.
guidance_users = sa.Table(
    "guidance_users",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

guidance_usages = sa.Table(
    "guidance_usages",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    # The foreign key serializes a concurrent delete and usage record: one of them fails, never both pass.
    sa.Column("guidance_id", sa.String(36), sa.ForeignKey("original_guidances.id"), primary_key=True),
    # The guidance_contents revision a pinning user plays (e.g. a published flow version); NULL: the current.
    sa.Column("content_revision", sa.Integer, nullable=True),  # migration 0004
    sa.Index("ix_guidance_usages_guidance", "tenant_id", "guidance_id"),
)

# What a guidance sounded like when a user pinned it: content revision n of a guidance is the stored audio
# under cache_key. Rows are numbered when first pinned; their audio stays while a usage pins them (0004).
guidance_contents = sa.Table(
    "guidance_contents",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("guidance_id", sa.String(36), primary_key=True),
    sa.Column("content_revision", sa.Integer, primary_key=True),
    sa.Column("cache_key", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "guidance_id", "cache_key", name="uq_guidance_contents_key"),
)
