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


def line_chart(
    title: str, series: Mapping[str, Sequence[tuple[datetime | str, float | None]]], ylabel: str = ""
) -> str:
    """A line chart of named series of (x, y) points, as a PNG data URI ("" when there is no data)."""
    if not any(series.values()):
        return ""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=96)
    try:
        for name, points in series.items():
            if points:
                xs: list[Any] = [p[0] for p in points]
                ys = [float("nan") if p[1] is None else p[1] for p in points]
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=name)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
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
