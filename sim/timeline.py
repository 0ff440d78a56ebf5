"""A tap's timeline as a picture (PNG or SVG): where the 400 ms of a purchase go, readable at a glance.

Three lanes share one time axis, from the start of the activation: the air (the activation and every frame between
reader and card), the card computing, and the PSAM (its contact line, lighter, and its computing). Within an exchange
the command goes out, the device computes, the answer comes back, so each exchange is drawn as three segments on two
lanes, between thin grey lines; its number and command name stand above the lanes, tied to its middle by a thin
line. A dashed red line marks the 400 ms limit, a black one the tap's total.

matplotlib is an optional extra (``pip install 'yikatong[plot]'``) imported only here, and only when a picture is
drawn; the figure is made without pyplot, so no window system is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from protocols.errors import YktError

from .tap import LIMIT_US, TapReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

FORMATS = (".png", ".svg")
_LANES = {"air": 2, "card": 1, "sam": 0}
_LANE_NAMES = ("PSAM\n(line, computing)", "card\ncomputing", "air\n(contactless)")
_COLORS = {"air": "#3b75af", "card": "#ef8636", "sam_line": "#b9c3cc", "sam": "#519e3e"}
_HEIGHT = 0.6
_LABEL_GAP = 0.014  # of the axis width: rotated labels closer than this overlap


class PlotUnavailable(YktError):
    """matplotlib is not installed, or the picture's file type is not one it is drawn in."""


def _figure_tools() -> tuple[ModuleType, type[Figure], type[Patch]]:
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise PlotUnavailable("drawing a timeline needs matplotlib: pip install 'yikatong[plot]'") from None
    return matplotlib, Figure, Patch


def draw_timeline(report: TapReport, path: str | os.PathLike[str], *, title: str = "") -> None:
    """Draw ``report`` into ``path`` (``.png`` or ``.svg``; SVG text stays text, so it can be searched)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise PlotUnavailable(f"{os.fspath(path)}: a timeline is drawn as {' or '.join(FORMATS)}")
    matplotlib, Figure, Patch = _figure_tools()
    ms = 1 / 1000
    bars: dict[str, list[tuple[float, float]]] = {key: [] for key in _COLORS}
    bars["air"].append((0.0, report.activation_us * ms))
    for step in report.steps:
        line, compute = ("air", "card") if step.role == "card" else ("sam_line", "sam")
        start = step.start_us
        bars[line].append((start * ms, step.out_us * ms))
        bars[compute].append(((start + step.out_us) * ms, step.device_us * ms))
        bars[line].append(((start + step.out_us + step.device_us) * ms, (step.line_us - step.out_us) * ms))
    total = report.total_us * ms
    right = max(total, LIMIT_US * ms) * 1.04

    figure = Figure(figsize=(13, 5.2), layout="constrained")
    axes = figure.add_subplot()
    for key, spans in bars.items():
        lane = _LANES["sam" if key == "sam_line" else key]
        axes.broken_barh([span for span in spans if span[1] > 0], (lane - _HEIGHT / 2, _HEIGHT),
                         facecolors=_COLORS[key], edgecolor="white", linewidth=0.4)
    top = 2 + _HEIGHT / 2
    labels = [(report.activation_us / 2 * ms, "activation")]
    for step in report.steps:
        axes.axvline(step.start_us * ms, color="#dddddd", linewidth=0.5, zorder=0)
        labels.append(((step.start_us + step.total_us / 2) * ms, f"{step.number} {step.label}"))
    gap, placed = right * _LABEL_GAP, -right
    for middle, text in labels:  # spread labels that would overlap, each tied to its exchange by a thin line
        placed = max(middle, placed + gap)
        axes.plot([middle, placed], [top, top + 0.3], color="#888888", linewidth=0.5)
        axes.text(placed, top + 0.32, text, rotation=60, fontsize=7, ha="left", va="bottom")
    axes.axvline(LIMIT_US * ms, color="#c0392b", linestyle="--", linewidth=1.2)
    axes.text(LIMIT_US * ms, -0.75, " 400 ms: DB31/T 239-2020 limit for one purchase", color="#c0392b", fontsize=8,
              ha="right", va="center")
    axes.axvline(total, color="black", linewidth=1.0)
    axes.text(total, -0.75, f" total {total:.1f} ms", fontsize=8, ha="left", va="center")
    axes.set_xlim(0, right)
    axes.set_ylim(-1, 4.6)
    axes.set_yticks(range(3), _LANE_NAMES)
    axes.set_xlabel("ms from the start of the activation")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.legend(handles=[Patch(color=_COLORS["air"], label="air"), Patch(color=_COLORS["card"], label="card computing"),
                         Patch(color=_COLORS["sam_line"], label="PSAM contact line"),
                         Patch(color=_COLORS["sam"], label="PSAM computing")],
                loc="upper right", fontsize=8, frameon=False)
    figure.suptitle(title or f"One tap: {report.outcome.message}; card at {report.kbps_to_card}/"
                    f"{report.kbps_to_reader} kbit/s, PSAM T=0 at {report.baud} baud; total {total:.1f} ms",
                    fontsize=10)
    try:
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            figure.savefig(path, format=suffix[1:])
    except OSError as exc:
        raise PlotUnavailable(f"{os.fspath(path)}: cannot write: {exc.strerror or exc}") from None
