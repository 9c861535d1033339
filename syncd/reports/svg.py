"""Small inline SVG charts, generated here so the HTML page needs no script or network."""

from __future__ import annotations

from html import escape

ACCENT = "#4f46e5"
MUTED = "#94a3b8"
GRID = "#e2e8f0"


def bar_chart(
    items: list[tuple[str, int]], *, title: str, color: str = ACCENT, width: int = 520
) -> str:
    """Horizontal bars, one per item, labelled with the item's name and its value."""
    if not items:
        return _empty(title, width)
    row, label_width, top = 28, 170, 8
    height = top + row * len(items) + 8
    largest = max(value for _, value in items) or 1
    bar_space = width - label_width - 50
    parts = []
    for index, (name, value) in enumerate(items):
        y = top + index * row
        length = max(round(bar_space * value / largest), 2 if value else 0)
        parts.append(
            f'<text x="{label_width - 10}" y="{y + 17}" text-anchor="end" class="lbl">'
            f"{escape(_clip(name, 24))}</text>"
            f'<rect x="{label_width}" y="{y + 4}" width="{length}" height="18" rx="4" '
            f'fill="{color}"><title>{escape(name)}: {value}</title></rect>'
            f'<text x="{label_width + length + 6}" y="{y + 17}" class="val">{value}</text>'
        )
    return _svg(title, width, height, "".join(parts))


def line_chart(points: list[tuple[str, int]], *, title: str, width: int = 520) -> str:
    """A line with a soft area under it; x labels are dates (MM-DD), y starts at zero."""
    if not points:
        return _empty(title, width)
    height, left, right, top, bottom = 200, 36, 24, 14, 28
    largest = max(max(value for _, value in points), 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(points) - 1, 1)

    def xy(index: int, value: int) -> tuple[float, float]:
        return left + index * step, top + plot_h - plot_h * value / largest

    coords = [xy(i, value) for i, (_, value) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{left},{top + plot_h} {line} {coords[-1][0]:.1f},{top + plot_h}"
    parts = [_grid(left, width - right, top, plot_h, largest)]
    parts.append(f'<polygon points="{area}" fill="{ACCENT}" opacity="0.12"/>')
    parts.append(
        f'<polyline points="{line}" fill="none" stroke="{ACCENT}" stroke-width="2.5" '
        'stroke-linejoin="round"/>'
    )
    for index, ((day, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#fff" stroke="{ACCENT}" '
            f'stroke-width="2"><title>{escape(day)}: {value}</title></circle>'
        )
        if index % 2 == (len(points) - 1) % 2:  # every other day, always the last one
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" class="axis">'
                f"{escape(day[5:])}</text>"
            )
    return _svg(title, width, height, "".join(parts))


def _grid(x0: int, x1: int, top: int, plot_h: int, largest: int) -> str:
    ticks = sorted({0, largest // 2, largest})
    parts = []
    for tick in ticks:
        y = top + plot_h - plot_h * tick / largest
        parts.append(
            f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{tick}</text>'
        )
    return "".join(parts)


def _svg(title: str, width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _empty(title: str, width: int) -> str:
    body = (
        f'<text x="{width / 2}" y="44" text-anchor="middle" class="axis">'
        "Nothing to chart yet</text>"
    )
    return _svg(title, width, 80, body)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
