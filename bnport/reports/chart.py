"""The HTML report's chart: each compared layer's max |error| over its tolerance, on a log axis, as inline SVG.

One horizontal bar per layer in execution order (then the outputs), named on the left in full; the axis spans
every ratio drawn (at least 1e-3 to 10) so no bar is clipped; the dashed line at 1 is the tolerance. A ratio of 0
(bit-identical) sits on the axis' left end, a comparison without a number (shapes differ, NaN) is a full red bar.
Written by hand (the standard library only): a plotting library would be a dependency for one chart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

GREEN, RED = "#2e7d32", "#c62828"
ROW, BAR, CHAR = 18, 12, 7.2  # px per row, bar height, width of a character of the 12 px monospace labels
PLOT, PAD, AXIS = 420, 12, 34  # plot width, padding, room for the axis labels below the bars


@dataclass(frozen=True)
class Bar:
    """One layer: its label, max |error| / tolerance (inf when there is no number), and whether it passed."""

    label: str
    ratio: float
    passed: bool


def decades(bars: list[Bar]) -> tuple[int, int]:
    """The axis' first and last power of ten: every finite non-zero ratio inside, and at least 1e-3 to 1e1."""
    logs = [math.log10(b.ratio) for b in bars if 0 < b.ratio < math.inf]
    return min([-3, *(math.floor(x) for x in logs)]), max([1, *(math.ceil(x) for x in logs)])


def svg(bars: list[Bar]) -> str:
    """The chart as an ``<svg>`` element, sized to hold every label and bar."""
    low, high = decades(bars)
    label_w = PAD + CHAR * max([len(b.label) for b in bars] + [8])
    width = label_w + PAD + PLOT + PAD + CHAR * 10  # room after the plot for the "tolerance" tag
    height = PAD + ROW * max(len(bars), 1) + AXIS

    def x_of(ratio: float) -> float:
        if ratio <= 0:
            return label_w + PAD
        if ratio == math.inf or ratio != ratio:
            return label_w + PAD + PLOT
        return label_w + PAD + PLOT * (min(max(math.log10(ratio), low), high) - low) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="chart" role="img" width="{width:.0f}" '
             f'height="{height}" viewBox="0 0 {width:.0f} {height}" font-family="monospace" font-size="12">',
             "<title>max |error| / tolerance per compared layer, log scale</title>"]
    bottom = PAD + ROW * len(bars)
    for k in range(low, high + 1):  # decade grid and labels
        x = x_of(10.0**k)
        parts.append(f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">1e{k}</text>')
    parts.append(f'<text x="{label_w + PAD + PLOT / 2:.1f}" y="{bottom + 30}" text-anchor="middle">'
                 "max |error| / tolerance (log scale)</text>")
    for i, bar in enumerate(bars):
        y = PAD + ROW * i
        colour = GREEN if bar.passed else RED
        shown = "no number" if bar.ratio != bar.ratio or bar.ratio == math.inf else f"{bar.ratio:.3g}"
        parts.append(f'<text x="{label_w:.1f}" y="{y + BAR - 1}" text-anchor="end">{escape(bar.label)}</text>')
        parts.append(f'<rect class="bar" x="{label_w + PAD:.1f}" y="{y}" width="{x_of(bar.ratio) - label_w - PAD:.1f}" '
                     f'height="{BAR}" fill="{colour}" data-ratio="{shown}" data-passed="{str(bar.passed).lower()}">'
                     f"<title>{escape(bar.label)}: {shown}</title></rect>")
    one = x_of(1.0)
    parts.append(f'<line id="tolerance" x1="{one:.1f}" y1="{PAD - 4}" x2="{one:.1f}" y2="{bottom}" stroke="#000" '
                 'stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{one + 4:.1f}" y="{PAD - 2}">tolerance</text>')
    parts.append("</svg>")
    return "\n".join(parts)
