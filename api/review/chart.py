"""Attribution bar chart geometry for an inline SVG: computed here so the template only places shapes.

Plain SVG (no script, no external library) prints, works offline and exposes every bar and number as DOM
elements a browser test or a screen reader can read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

LABEL_WIDTH = 220
PLOT_WIDTH = 360
VALUE_WIDTH = 90
ROW_HEIGHT = 26
BAR_HEIGHT = 16
TOP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    feature: str
    label: str
    value: float
    text: str
    x: float
    y: float
    width: float
    positive: bool


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    width: int
    height: int
    zero_x: float
    label_x: int
    value_x: int

    @property
    def text_offset(self) -> float:
        return BAR_HEIGHT / 2 + 4


def attribution_chart(values: Mapping[str, float], *, label: Callable[[str], str]) -> Chart:
    """One horizontal bar per feature, largest |value| first, around a zero line in the middle of the plot."""
    ranked = sorted(values.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    biggest = max((abs(v) for _, v in ranked), default=0.0) or 1.0
    half = PLOT_WIDTH / 2
    zero_x = LABEL_WIDTH + half
    bars = []
    for row, (feature, value) in enumerate(ranked):
        width = abs(value) / biggest * half
        bars.append(
            Bar(
                feature=feature,
                label=label(feature),
                value=value,
                text=f"{value:+.4f}",
                x=zero_x if value >= 0 else zero_x - width,
                y=TOP + row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2,
                width=max(width, 1.0),
                positive=value >= 0,
            )
        )
    return Chart(
        bars=tuple(bars),
        width=LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
        height=TOP * 2 + ROW_HEIGHT * len(bars),
        zero_x=zero_x,
        label_x=LABEL_WIDTH - 8,
        value_x=LABEL_WIDTH + PLOT_WIDTH + 8,
    )
