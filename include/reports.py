"""Self-contained HTML reports: Jinja2 templates and matplotlib charts embedded as PNG data URIs.

Shared by the data quality and monitoring reports. A report is one HTML file (no external assets)
plus a JSON twin with the same facts, written atomically into the reports directory.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """Render `template` from include/templates with autoescaping."""
    return _env.get_template(template).render(**context)


MIN_POINTS = 4  # fewer runs than this make a trend line misleading: show the values instead


def fmt_value(value: float | None, unit: str = "") -> str:
    """A value with its unit: ``1,250 rows``, ``82.45%``, ``3.50 h``; ``n/a`` for None."""
    if value is None:
        return "n/a"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _when(x: datetime | str) -> str:
    return x.strftime("%Y-%m-%d %H:%M") if isinstance(x, datetime) else str(x)


def chart(
    title: str, series: Mapping[str, Sequence[tuple[datetime | str, float | None]]], unit: str = ""
) -> dict[str, Any]:
    """A chart that says something: ``{"title", "uri", "notes", "values"}``.

    Drawn (``uri`` a PNG data URI) only for series with at least `MIN_POINTS` points that vary; the time
    axis spans exactly the data's range. A constant series becomes one line in ``notes``; with too few
    points ``values`` lists them (with units) and ``notes`` says "not enough history yet". Empty -> no uri,
    no values.
    """
    out: dict[str, Any] = {"title": title, "uri": "", "notes": [], "values": []}
    points = {name: [p for p in pts if p[1] is not None] for name, pts in series.items()}
    points = {name: pts for name, pts in points.items() if pts}
    if not points:
        return out
    xs = sorted({p[0] for pts in points.values() for p in pts}, key=str)
    if len(xs) < MIN_POINTS:
        out["notes"].append(f"not enough history yet: {len(xs)} run(s); a trend is drawn from {MIN_POINTS}")
        out["values"] = [
            {"series": name, "at": _when(x), "value": fmt_value(y, unit)}
            for name, pts in points.items()
            for x, y in pts
        ]
        return out
    drawn = {}
    for name, pts in points.items():
        ys = {p[1] for p in pts}
        if len(ys) == 1:
            out["notes"].append(
                f"{name}: constant at {fmt_value(pts[0][1], unit)} over {len(pts)} runs "
                f"({_when(pts[0][0])} – {_when(pts[-1][0])})"
            )
        else:
            drawn[name] = pts
    if drawn:
        out["uri"] = _plot(title, drawn, unit)
    return out


def x_range(series: Mapping[str, Sequence[tuple[Any, float | None]]]) -> tuple[datetime, datetime] | None:
    """The time axis of `series`: first to last point plus 3 % either side (None for non-time x values)."""
    every_x = [p[0] for points in series.values() for p in points]
    lo, hi = min(every_x), max(every_x)
    if not isinstance(lo, datetime) or lo == hi:
        return None
    pad = (hi - lo) * 0.03
    return lo - pad, hi + pad


def _plot(title: str, series: Mapping[str, Sequence[tuple[Any, float | None]]], unit: str) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=96)
    try:
        for name, points in series.items():
            xs: list[Any] = [p[0] for p in points]
            ys = [float("nan") if p[1] is None else float(p[1]) for p in points]
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=name)
        bounds = x_range(series)
        if bounds:
            ax.set_xlim(*bounds)  # type: ignore[arg-type]  # datetimes: matplotlib converts them; the data's own range, never matplotlib's default span of years
        # Tick labels need the precision of the tick step (0.991 vs 0.993), which fmt_value's 2 decimals lose.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}{'' if unit == '%' else ' '}{unit}".strip()))
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8, loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def line_chart(
    title: str, series: Mapping[str, Sequence[tuple[datetime | str, float | None]]], ylabel: str = ""
) -> str:
    """The PNG data URI of `chart` ("" when it draws nothing)."""
    return str(chart(title, series, ylabel)["uri"])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(directory: Path, stem: str, html: str, data: Mapping[str, Any]) -> dict[str, str]:
    """Write `<stem>.html` and `<stem>.json` into `directory`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / f"{stem}.html"
    json_path = directory / f"{stem}.json"
    _atomic_write(html_path, html)
    _atomic_write(json_path, json.dumps(data, indent=2, default=str))
    return {"html": str(html_path), "json": str(json_path)}


def safe_stem(run_id: str) -> str:
    """A file-name-safe form of an Airflow run id."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
