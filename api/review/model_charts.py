"""Geometry of the model page's inline SVG charts (importance by version, performance over time, selection
rate by group, live periods). Computed here so templates only place shapes; every mark carries its value as
data attributes a browser test or a screen reader can read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

PALETTE = ("#1f5fbf", "#b3362b", "#2a7f3f", "#9a6700", "#6b3fa0", "#0f7c8c")
LABEL_WIDTH = 200
PLOT_WIDTH = 420
VALUE_WIDTH = 80


@dataclass(frozen=True, slots=True)
class BarMark:
    series: str
    category: str
    value: float
    text: str
    x: float
    y: float
    width: float
    height: float
    color: str


@dataclass(frozen=True, slots=True)
class BarChart:
    """Horizontal bars, one group per category and one bar per series within it."""

    bars: tuple[BarMark, ...]
    labels: tuple[tuple[str, float], ...]  # (category, y of its label)
    legend: tuple[tuple[str, str], ...]  # (series, colour)
    width: int
    height: int
    label_x: int


def bar_chart(
    categories: Sequence[str], series: Mapping[str, Mapping[str, float | None]], *, digits: int = 4
) -> BarChart:
    bar_h, gap = 12.0, 10.0
    group_h = bar_h * max(1, len(series)) + gap
    biggest = max((abs(v) for s in series.values() for v in s.values() if v is not None), default=0.0) or 1.0
    bars, labels = [], []
    for row, category in enumerate(categories):
        top = 8 + row * group_h
        labels.append((category, top + bar_h * max(1, len(series)) / 2 + 4))
        for k, (name, values) in enumerate(series.items()):
            value = values.get(category)
            if value is None:
                continue
            bars.append(
                BarMark(
                    series=name,
                    category=category,
                    value=value,
                    text=f"{value:.{digits}f}",
                    x=LABEL_WIDTH,
                    y=top + k * bar_h,
                    width=max(1.0, abs(value) / biggest * PLOT_WIDTH),
                    height=bar_h - 2,
                    color=PALETTE[k % len(PALETTE)],
                )
            )
    legend = tuple((name, PALETTE[k % len(PALETTE)]) for k, name in enumerate(series))
    height = int(16 + group_h * len(categories))
    return BarChart(tuple(bars), tuple(labels), legend, LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH, height, LABEL_WIDTH - 8)


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str
    value: float


@dataclass(frozen=True, slots=True)
class Line:
    series: str
    color: str
    dashed: bool
    points: tuple[Point, ...]

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True, slots=True)
class LineChart:
    """Values in [0, 1] over ordered buckets: realised lines solid, estimates dashed."""

    lines: tuple[Line, ...]
    ticks: tuple[tuple[str, float], ...]  # (bucket, x)
    grid: tuple[tuple[str, float], ...]  # (value, y)
    width: int
    height: int
    left: int
    bottom: float


def line_chart(buckets: Sequence[str], series: Mapping[str, tuple[bool, Mapping[str, float | None]]]) -> LineChart:
    left, top, plot_w, plot_h = 50, 10, 560, 200
    step = plot_w / max(1, len(buckets) - 1)
    xs = {b: left + (i * step if len(buckets) > 1 else plot_w / 2) for i, b in enumerate(buckets)}
    lines = []
    for k, (name, (dashed, values)) in enumerate(series.items()):
        points = tuple(Point(xs[b], top + (1 - v) * plot_h, b, v) for b in buckets if (v := values.get(b)) is not None)
        if points:
            lines.append(Line(name, PALETTE[(k // 2) % len(PALETTE)], dashed, points))
    grid = tuple((f"{v:.2f}", top + (1 - v) * plot_h) for v in (0.0, 0.25, 0.5, 0.75, 1.0))
    return LineChart(
        tuple(lines),
        tuple((b, xs[b]) for b in buckets),
        grid,
        left + plot_w + 30,
        top + plot_h + 40,
        left,
        top + plot_h,
    )


@dataclass(frozen=True, slots=True)
class Period:
    version: str
    start: datetime
    end: datetime | None
    x: float
    width: float
    y: float
    color: str


@dataclass(frozen=True, slots=True)
class PeriodChart:
    periods: tuple[Period, ...]
    rows: tuple[tuple[str, float], ...]
    width: int
    height: int


def period_chart(
    versions: Sequence[str], periods: Mapping[str, Sequence[tuple[datetime, datetime | None]]], now: datetime
) -> PeriodChart:
    starts = [s for ps in periods.values() for s, _ in ps]
    if not starts:
        return PeriodChart((), (), LABEL_WIDTH + PLOT_WIDTH, 0)
    first = min(starts)
    last = max([now, *[e for ps in periods.values() for _, e in ps if e is not None]])
    span = max((last - first).total_seconds(), 1.0)
    marks, rows = [], []
    for row, version in enumerate(versions):
        y = 6 + row * 22
        rows.append((version, y + 12))
        for start, end in periods.get(version, ()):
            x0 = LABEL_WIDTH + (start - first).total_seconds() / span * PLOT_WIDTH
            x1 = LABEL_WIDTH + ((end or last) - first).total_seconds() / span * PLOT_WIDTH
            marks.append(Period(version, start, end, x0, max(2.0, x1 - x0), y, PALETTE[row % len(PALETTE)]))
    return PeriodChart(tuple(marks), tuple(rows), LABEL_WIDTH + PLOT_WIDTH + 20, 12 + 22 * len(versions))
