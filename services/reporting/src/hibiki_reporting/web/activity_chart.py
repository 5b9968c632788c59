"""Geometry of the calls-and-SMS-over-time chart, drawn by the template as inline SVG (no scripts).

One line per figure (着信数, SMS送信依頼数, 送信完了, 到達) over the hours of one day or the days of a range;
each hour or day is a group carrying its figures as data-* attributes and a <title> naming them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hibiki_reporting.domain.activity import SERIES, Activity, ActivityPoint, Granularity

WIDTH = 760
HEIGHT = 240
LEFT = 44  # room for the value axis
RIGHT = 12
TOP = 12
BOTTOM = 30  # room for the time axis
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
MAX_TIME_LABELS = 8
LABELS = {
    "calls": "着信数",
    "sms_requested": "SMS送信依頼数",
    "sms_accepted": "送信完了",
    "sms_delivered": "到達",
}
# The CSS colours the series by kind; the template also marks them with dashes, so colour is not all.
SERIES_LABELS = tuple((kind, LABELS[kind]) for kind in SERIES)


@dataclass(frozen=True)
class Marker:
    kind: str
    label: str
    value: int
    x: float
    y: float


@dataclass(frozen=True)
class Bucket:
    """One hour or one day: `key` (data-bucket) is ISO, e.g. 2026-11-09T10:00 or 2026-11-09."""

    key: str
    label: str
    title: str
    x: float
    width: float
    markers: tuple[Marker, ...]
    tick: bool

    def value(self, kind: str) -> int:
        return next(marker.value for marker in self.markers if marker.kind == kind)


@dataclass(frozen=True)
class Line:
    kind: str
    label: str
    points: str  # the polyline's "x,y x,y …"
    total: int


@dataclass(frozen=True)
class Gridline:
    value: int
    y: float


@dataclass(frozen=True)
class ActivityChart:
    width: int
    height: int
    granularity: str
    heading: str
    description: str
    buckets: tuple[Bucket, ...]
    lines: tuple[Line, ...]
    gridlines: tuple[Gridline, ...]
    plot_left: int
    plot_right: int
    plot_top: int
    axis_y: int

    @property
    def empty(self) -> bool:
        return all(line.total == 0 for line in self.lines)


def nice_step(largest: int, steps: int = 4) -> int:
    """A step of 1, 2 or 5 times a power of ten so that `steps` of them reach `largest` (at least 1)."""
    rough = max(largest, 1) / steps
    power = int(10 ** max(math.floor(math.log10(rough)), 0))
    return next(power * n for n in (1, 2, 5, 10) if power * n >= rough)


def _label(point: ActivityPoint, granularity: Granularity) -> str:
    if granularity is Granularity.HOUR:
        return f"{point.start.hour}時"
    return f"{point.start.month}/{point.start.day}"


def _key(point: ActivityPoint, granularity: Granularity) -> str:
    if granularity is Granularity.HOUR:
        return point.start.strftime("%Y-%m-%dT%H:00")
    return point.start.date().isoformat()


def activity_chart(activity: Activity) -> ActivityChart:
    granularity = activity.granularity
    largest = max((int(getattr(p, kind)) for p in activity.points for kind in SERIES), default=0)
    step = nice_step(largest)
    top_value = step * max(math.ceil(largest / step), 1)
    count = max(len(activity.points), 1)
    band = PLOT_WIDTH / count
    every = 3 if granularity is Granularity.HOUR else math.ceil(count / MAX_TIME_LABELS)

    def y_of(value: int) -> float:
        return round(TOP + PLOT_HEIGHT * (1 - value / top_value), 1)

    buckets = []
    for index, point in enumerate(activity.points):
        label = _label(point, granularity)
        x = round(LEFT + index * band, 1)
        center = round(LEFT + (index + 0.5) * band, 1)
        markers = tuple(
            Marker(kind, name, int(getattr(point, kind)), center, y_of(int(getattr(point, kind))))
            for kind, name in SERIES_LABELS
        )
        when = f"{point.start.date().isoformat()} {label}台" if granularity is Granularity.HOUR else label
        title = f"{when}: " + "、".join(f"{m.label} {m.value}" for m in markers)
        buckets.append(
            Bucket(_key(point, granularity), label, title, x, round(band, 1), markers, index % every == 0)
        )
    lines = tuple(
        Line(
            kind,
            name,
            " ".join(f"{b.markers[position].x},{b.markers[position].y}" for b in buckets),
            activity.total(kind),
        )
        for position, (kind, name) in enumerate(SERIES_LABELS)
    )
    gridlines = tuple(Gridline(value, y_of(value)) for value in range(0, top_value + 1, step))
    start, end = activity.day_range.start.isoformat(), activity.day_range.end.isoformat()
    if granularity is Granularity.HOUR:
        heading = "時間別の着信数・SMS送信依頼数・送信完了・到達"
        period = f"{start} の1時間ごと（日本時間）"
    else:
        heading = "日別の着信数・SMS送信依頼数・送信完了・到達"
        period = f"{start} 〜 {end} の1日ごと"
    totals = "、".join(f"{line.label} {line.total}" for line in lines)
    return ActivityChart(
        WIDTH,
        HEIGHT,
        granularity.value,
        heading,
        f"{period}。合計: {totals}。",
        tuple(buckets),
        lines,
        gridlines,
        LEFT,
        WIDTH - RIGHT,
        TOP,
        TOP + PLOT_HEIGHT,
    )
