"""Audio files, synthesized audio, original guidances and the guidance usage read model.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "synthesized_audio",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("mulaw_wav", sa.LargeBinary, nullable=False),
        sa.Column("pcm16_wav", sa.LargeBinary, nullable=False),
        sa.Column("pcm16_sample_rate", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audio_files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("system", sa.Boolean, nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("tenant_id", "name", name="uq_audio_files_tenant_name"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "cache_key"],
            ["synthesized_audio.tenant_id", "synthesized_audio.cache_key"],
            name="fk_audio_files_audio",
        ),
    )
    op.create_table(
        "original_guidances",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("speech_synthesis", sa.Boolean, nullable=False),
        sa.Column("audio_file_id", sa.String(36), nullable=False),
        sa.Column("system", sa.Boolean, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("tenant_id", "name", name="uq_original_guidances_tenant_name"),
        sa.ForeignKeyConstraint(
            ["audio_file_id"], ["audio_files.id"], name="fk_original_guidances_audio_file"
        ),
    )
    op.create_table(
        "guidance_users",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "guidance_usages",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("guidance_id", sa.String(36), primary_key=True),
        sa.ForeignKeyConstraint(
            ["guidance_id"], ["original_guidances.id"], name="fk_guidance_usages_guidance"
        ),
    )
    op.create_index("ix_guidance_usages_guidance", "guidance_usages", ["tenant_id", "guidance_id"])


def downgrade() -> None:
    op.drop_index("ix_guidance_usages_guidance", table_name="guidance_usages")
    op.drop_table("guidance_usages")
    op.drop_table("guidance_users")
    op.drop_table("original_guidances")
    op.drop_table("audio_files")
    op.drop_table("synthesized_audio")
