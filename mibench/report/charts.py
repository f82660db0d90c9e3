"""Inline SVG charts drawn in Python (no JavaScript, no CDN): grouped bars with CI whiskers.

`category_chart` draws vertical bars per category (one colour per model), `metric_chart` horizontal
bars per metric, on the judge's 0-10 scale or on a metric's own scale (`scale_max`, e.g. for the
objective metrics, `nice_max`). A missing value draws no bar and says "n/a". Every text is escaped
(model names come from the user); the result is `markupsafe.Markup`,
so Jinja inserts it as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
SCALE_MAX = 10.0


@dataclass(frozen=True)
class Bar:
    """One bar: a model's value with its 95% CI (NaN when unknown)."""

    model: str
    value: float
    low: float = math.nan
    high: float = math.nan


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _tip(bar: Bar) -> str:
    if math.isnan(bar.value):
        return f"{bar.model}: n/a"
    ci = "" if math.isnan(bar.low) else f" [{bar.low:.4g}, {bar.high:.4g}]"
    return f"{bar.model}: {bar.value:.4g}{ci}"


def _legend(models: list[str], y: float) -> list[str]:
    parts, x = [], 10.0
    for i, model in enumerate(models):
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour(i)}"/>'
                     f'<text x="{x + 14:.1f}" y="{y:.1f}">{escape(model)}</text>')
        x += 24 + 7 * len(model)
    return parts


def _svg(width: float, height: float, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def category_chart(title: str, models: list[str], groups: list[tuple[str, list[Bar]]]) -> Markup:
    """Vertical grouped bars: one group per category, one bar per model, CI whiskers."""
    left, top, plot_h, bar_w, gap = 36.0, 34.0, 180.0, 22.0, 28.0
    group_w = max(bar_w * max(len(models), 1) + gap, 7.0 * max((len(g[0]) for g in groups), default=0) + 12)
    width = max(left + group_w * len(groups) + 10, 60 + 7 * sum(len(m) + 4 for m in models))
    body = _legend(models, 16)

    def y_of(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), SCALE_MAX) / SCALE_MAX)

    for tick in range(0, 11, 2):
        y = y_of(tick)
        body.append(f'<line x1="{left}" x2="{width - 5:.1f}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for g, (label, bars) in enumerate(groups):
        x0 = left + g * group_w + (group_w - bar_w * len(models)) / 2
        for bar in bars:
            x = x0 + models.index(bar.model) * bar_w
            fill = colour(models.index(bar.model))
            if math.isnan(bar.value):
                body.append(f'<text x="{x + bar_w / 2:.1f}" y="{y_of(0) - 4:.1f}" text-anchor="middle" '
                            f'class="na">n/a<title>{escape(_tip(bar))}</title></text>')
                continue
            y = y_of(bar.value)
            body.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{y_of(0) - y:.1f}" '
                        f'fill="{fill}"><title>{escape(_tip(bar))}</title></rect>')
            if not math.isnan(bar.low):
                cx, y1, y2 = x + bar_w / 2, y_of(bar.low), y_of(bar.high)
                body.append(f'<path d="M{cx:.1f} {y1:.1f}V{y2:.1f}M{cx - 4:.1f} {y1:.1f}h8M{cx - 4:.1f} '
                            f'{y2:.1f}h8" class="whisker"/>')
        body.append(f'<text x="{x0 + bar_w * len(models) / 2:.1f}" y="{top + plot_h + 16:.1f}" '
                    f'text-anchor="middle">{escape(label)}</text>')
    return _svg(width, top + plot_h + 26, title, body)


def nice_max(values: list[float]) -> float:
    """A round axis end at or above the largest value (1, 2 or 5 times a power of ten; 1 when none)."""
    top = max((v for v in values if not math.isnan(v)), default=0.0)
    if top <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= top)


def metric_chart(title: str, models: list[str], groups: list[tuple[str, list[Bar]]],
                 scale_max: float = SCALE_MAX) -> Markup:
    """Horizontal grouped bars: one group per metric, one bar per model, CI whiskers; the axis runs from 0
    to `scale_max` in five steps."""
    left, top, plot_w, bar_h, gap = 200.0, 30.0, 420.0, 11.0, 10.0
    group_h = bar_h * max(len(models), 1) + gap
    height = top + group_h * len(groups) + 24
    width = max(left + plot_w + 20, 20 + 7 * sum(len(m) + 4 for m in models))
    body = _legend(models, 16)

    def x_of(v: float) -> float:
        return left + plot_w * min(max(v, 0.0), scale_max) / scale_max

    for step in range(6):
        tick = scale_max * step / 5
        x = x_of(tick)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 20:.1f}" class="grid"/>'
                    f'<text x="{x:.1f}" y="{height - 6:.1f}" text-anchor="middle">{tick:.3g}</text>')
    for g, (label, bars) in enumerate(groups):
        y0 = top + g * group_h
        body.append(f'<text x="{left - 6}" y="{y0 + bar_h * len(models) / 2 + 4:.1f}" '
                    f'text-anchor="end">{escape(label)}</text>')
        for bar in bars:
            y = y0 + models.index(bar.model) * bar_h
            if math.isnan(bar.value):
                body.append(f'<text x="{left + 4}" y="{y + bar_h - 2:.1f}" class="na">n/a'
                            f'<title>{escape(_tip(bar))}</title></text>')
                continue
            body.append(f'<rect x="{left}" y="{y + 1:.1f}" width="{x_of(bar.value) - left:.1f}" '
                        f'height="{bar_h - 2:.1f}" fill="{colour(models.index(bar.model))}">'
                        f"<title>{escape(_tip(bar))}</title></rect>")
            if not math.isnan(bar.low):
                cy, x1, x2 = y + bar_h / 2, x_of(bar.low), x_of(bar.high)
                body.append(f'<path d="M{x1:.1f} {cy:.1f}H{x2:.1f}M{x1:.1f} {cy - 3:.1f}v6M{x2:.1f} '
                            f'{cy - 3:.1f}v6" class="whisker"/>')
    return _svg(width, height, title, body)
