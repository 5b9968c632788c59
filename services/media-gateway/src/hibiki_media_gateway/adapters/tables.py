"""media-gateway's tables: the calls in progress, and the processes that carry them."""

from __future__ import annotations

from hibiki_runtime.instances import instances_table
from sqlalchemy import Column, DateTime, Index, MetaData, String, Table

metadata = MetaData()

media_instances = instances_table(metadata, "media_instances")

# A row per call in progress, written with its CallStarted and deleted with its CallEnded: what a process
# that stopped without ending its calls left behind (see service_layer/lost_calls.py).
media_calls = Table(
    "media_calls",
    metadata,
    Column("call_id", String(100), primary_key=True),
    Column("instance_id", String(64), nullable=False),
    Column("tenant_id", String(100), nullable=False),
    Column("dialed_number", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Index("ix_media_calls_instance_id", "instance_id"),
)
