"""Geometry of the per-route abandonment funnel, drawn by the template as inline SVG (no scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hibiki_runtime.phone import written_form

from hibiki_reporting.domain.figures import RouteFunnelRow

WIDTH = 760
LABEL_WIDTH = 190
BAR_AREA = WIDTH - LABEL_WIDTH - 60
BAR_HEIGHT = 14
BAR_GAP = 4
GROUP_GAP = 22
# The stages of a route from callers who heard it to callers it lost; the CSS colours them by kind.
STAGES = (
    ("reached", "到達"),
    ("invalid_inputs", "入力ミス"),
    ("timeouts", "入力タイムアウト"),
    ("abandoned", "途中放棄"),
)


@dataclass(frozen=True)
class Bar:
    kind: str
    label: str
    value: int
    x: int
    y: int
    width: int


@dataclass(frozen=True)
class RouteGroup:
    route_id: str
    route_name: str
    y: int
    abandonment_rate: float
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class FunnelChart:
    width: int
    height: int
    groups: tuple[RouteGroup, ...]


def funnel_chart(rows: Sequence[RouteFunnelRow]) -> FunnelChart:
    """Bars scaled to the busiest route; a non-zero value is at least one pixel wide so it stays visible."""
    scale = max((row.reached for row in rows), default=0) or 1
    group_height = len(STAGES) * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP
    # Several flows in one chart (all dialed numbers): each route is labelled with its flow's number too.
    several_flows = len({row.flow_id for row in rows}) > 1
    groups = []
    for index, row in enumerate(rows):
        top = index * group_height + 10
        bars = []
        for position, (kind, label) in enumerate(STAGES):
            value = int(getattr(row, kind))
            width = max(round(BAR_AREA * value / scale), 1 if value else 0)
            bars.append(Bar(kind, label, value, LABEL_WIDTH, top + position * (BAR_HEIGHT + BAR_GAP), width))
        rate = row.abandoned / row.reached if row.reached else 0.0
        name = row.route_name or row.route_id
        if several_flows and row.dialed_number:
            name = f"{name} ({written_form(row.dialed_number)})"
        groups.append(RouteGroup(row.route_id, name, top, rate, tuple(bars)))
    return FunnelChart(WIDTH, max(len(rows) * group_height, 40), tuple(groups))
