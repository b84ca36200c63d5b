"""``--plot`` with ``--hardware``: the roofline of a count on its device.

Each operator is a point at its arithmetic intensity (FLOPs per byte moved) and the FLOP/s it
would attain at its roofline time (2 · MACs / seconds), sized by its share of the estimated
time; the two ceilings (the dtype's dense peak, and bandwidth × intensity) meet at the ridge.
Operators without arithmetic (copies, concatenations) have no place on a log axis: the title
gives their share of the time. Draws on matplotlib's Agg canvas, changing none of its state.
"""
from __future__ import annotations

from typing import Optional

from ..engines.analysis import CountReport
from ..roofline import Hardware

__all__ = ["plot_roofline"]


def plot_roofline(report: CountReport, hardware: Hardware, path: str,
                  dtype: Optional[str] = None, title: str = "") -> None:
    """Draw ``report``'s operators on ``hardware``'s roofline to ``path`` (``.png``, ``.svg``,
    ...; the extension names the format).

    Args:
        report: a count with roofline times (``count_model(..., hardware=...)``).
        hardware: the device the times are for.
        dtype: the dtype whose peak is the compute ceiling (default fp32).
        title: the plot's title (the model's name).

    Raises:
        ValueError: the report has no roofline times.
        ImportError: matplotlib is not installed.
        OSError: ``path`` cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not report.seconds_by_operator:
        raise ValueError("the report has no roofline times: count with hardware=...")
    peak = hardware.peak_for(dtype or "fp32") * hardware.compute_efficiency
    bandwidth = hardware.bandwidth * hardware.memory_efficiency
    total = sum(report.seconds_by_operator.values()) or 1.0
    intensity = report.intensity_by_operator()
    points = [(intensity[name], 2 * report.by_operator[name] / seconds, seconds, name)
              for name, seconds in report.seconds_by_operator.items()
              if seconds and report.by_operator.get(name) and intensity.get(name)]
    without = sum(s for name, s in report.seconds_by_operator.items()
                  if not report.by_operator.get(name))
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [p[0] for p in points] or [1.0]
    lo, hi = min(min(xs), peak / bandwidth) / 4, max(max(xs), peak / bandwidth) * 4
    ridge = peak / bandwidth
    ax.plot([lo, ridge, hi], [lo * bandwidth, peak, peak], color="black", linewidth=1.2)
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=0.8)
    for x, y, seconds, name in points:
        ax.scatter([x], [y], s=20 + 600 * seconds / total, alpha=0.6)
        ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs / byte)")
    ax.set_ylabel("attained FLOP/s at the roofline time")
    ax.set_title(f"{title or 'model'} on {hardware.name} ({dtype or 'fp32'} peak); ops without "
                 f"arithmetic: {100 * without / total:.0f}% of the time", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
