"""Plot cost laws: the counts as points and each law as a curve, on log-log axes, one color
per model (matplotlib, the ``[plot]`` extra; imported only when a plot is drawn). On log-log
axes a term c·S^d is a straight line of slope d, so the degree is visible."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

from .count import LawReport
from .fit import Law, format_law

__all__ = ["PLOT_EXTENSIONS", "check_plot_path", "plot_laws"]

PLOT_EXTENSIONS = (".png", ".pdf", ".svg")


def check_plot_path(path: str) -> None:
    """Refuse a plot path before anything is counted.

    Raises:
        ValueError: ``path`` is a directory, its extension is not one of
            :data:`PLOT_EXTENSIONS`, or its folder does not exist.
    """
    if os.path.isdir(path):
        raise ValueError(f"--plot {path!r} is a directory: give a file name like laws.png")
    extension = os.path.splitext(path)[1].lower()
    if extension not in PLOT_EXTENSIONS:
        raise ValueError(f"--plot {path!r}: unknown extension {extension or '(none)'!r}; "
                         f"expected one of {', '.join(PLOT_EXTENSIONS)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--plot {path!r}: the folder {folder!r} does not exist")


def _curve(law: Law, low: int, high: int, points: int = 200):
    step = (high - low) / (points - 1)
    xs = [low + i * step for i in range(points)]
    return xs, [float(law.value(Fraction(x))) for x in xs]


def plot_laws(reports: Sequence[LawReport], path: str, title: str = "") -> None:
    """Draw each report's law as a curve over its sizes and its real counts as points (every
    size of a fitted law; the check sizes of a symbolic one), log-log, and save to ``path``
    (.png, .pdf or .svg). A model without a law has its points joined by a dashed line and
    "(no law)" in the legend; the legend says which route gave each law.

    Raises:
        ValueError: a bad ``path`` (:func:`check_plot_path`) or no reports.
        ImportError: matplotlib is not installed (``pip install fvcore_ext[plot]``).
    """
    check_plot_path(path)
    if not reports:
        raise ValueError("nothing to plot: no reports")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'fvcore_ext[plot]'") from None
    figure, axes = plt.subplots(figsize=(7, 5.5))
    try:
        for index, report in enumerate(reports):
            color = f"C{index % 10}"
            sizes = [row.size for row in report.rows]
            totals = [row.total for row in report.rows]
            if isinstance(report.law, Law):
                xs, ys = _curve(report.law, min(sizes), max(sizes))
                route = "one symbolic run" if report.route == "symbolic" else "fitted"
                axes.plot(xs, ys, "-", color=color,
                          label=f"{report.label}: {format_law(report.law)} "
                                f"({report.degree_text()}; {route})")
                # the sizes counted for real: all of them for a fitted law, the checks of a
                # symbolic one (its other rows are the law's own values)
                counted = report.law.counts if report.route == "symbolic" else \
                    list(zip(sizes, totals))
                axes.plot([n for n, _ in counted], [c for _, c in counted], "o", color=color)
            else:
                axes.plot(sizes, totals, "o--", color=color, label=f"{report.label} (no law)")
        variables = "/".join(sorted({r.variable for r in reports}))
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(variables)
        axes.set_ylabel("MACs")
        axes.set_title(title or f"MACs over {variables} (points: counts; lines: exact laws)")
        axes.grid(True, which="both", alpha=0.3)
        # below the axes: the points at small sizes stay visible
        axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12),
                    frameon=False)
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)
