"""A small server-rendered SVG bar chart (stacked by series): no JavaScript, no third-party library.

Accessible: the SVG has a title and description, and each bar a <title> tooltip; pages show the
same numbers in a table beside it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#2355d8", "#e07b00", "#0f9d58", "#9c27b0", "#d93025", "#00838f", "#6d4c41", "#5f6368"]
WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM = 640, 200, 64, 22


def stacked_bars(days: list[date], series: dict[str, list[Decimal]], title: str, unit: str = "$") -> SafeString:
    labels = sorted(series, key=lambda label: -sum(series[label]))
    totals = [sum((series[label][i] for label in labels), Decimal(0)) for i in range(len(days))]
    top = max(totals, default=Decimal(0)) or Decimal(1)
    slot = (WIDTH - PAD_LEFT) / max(len(days), 1)
    plot_height = HEIGHT - PAD_BOTTOM - 8
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(title)}: {len(days)} days, highest day {unit}{top:.6f}.</desc>',
        f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - PAD_BOTTOM}" class="axis-line"/>',
        f'<text x="{PAD_LEFT - 6}" y="14" text-anchor="end" font-size="10" class="axis">{unit}{top:.6f}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{HEIGHT - PAD_BOTTOM}" text-anchor="end" font-size="10" class="axis">0</text>',
    ]
    for index, day in enumerate(days):
        y = HEIGHT - PAD_BOTTOM
        x = PAD_LEFT + index * slot + slot * 0.15
        for color_index, label in enumerate(labels):
            value = series[label][index]
            if not value:
                continue
            height = float(value / top) * plot_height
            y -= height
            color = PALETTE[color_index % len(PALETTE)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" fill="{color}">'
                f"<title>{day:%b %d} · {escape(label)}: {unit}{value:.6f}</title></rect>"
            )
        # A date every week, and the last day unless a weekly label sits too close to it.
        last = len(days) - 1
        if (index % 7 == 0 and last - index >= 3) or index == last:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10" '
                f'class="axis">{day:%b %d}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{escape(label)}</li>'
        for i, label in enumerate(labels)
    )
    return mark_safe("".join(parts) + (f'<ul class="legend">{legend}</ul>' if labels else ""))  # noqa: S308  (escaped above)
