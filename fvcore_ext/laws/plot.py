"""Plot cost laws: the counts as points and each law as a curve, on log-log axes, one color
per model (matplotlib, the ``[plot]`` extra; imported only when a plot is drawn). On log-log
axes a term c·S^d is a straight line of slope d, so the degree is visible."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

from .count import LawReport
from .fit import Law, degree_text, format_law

__all__ = ["check_plot_path", "plot_laws"]

def check_plot_path(path: str) -> None:
    """Refuse a ``--plot`` target before anything is counted (every command's ``--plot``):
    a directory, a missing or read-only folder, an extension matplotlib cannot write, or no
    matplotlib.

    Raises:
        ValueError: one line saying which.
    """
    if os.path.isdir(path):
        raise ValueError(f"--plot {path!r} is a directory: give a file, such as "
                         f"{os.path.join(path, 'plot.png')!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--plot {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"--plot {path!r}: not writable")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install matplotlib") from None
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasAgg.get_supported_filetypes()
    if extension not in formats:
        raise ValueError(f"--plot {path!r}: " + (f"unknown extension {extension!r}" if extension
                                                 else "no extension")
                         + f"; matplotlib writes {', '.join(sorted(formats))}")


def _curve(law: Law, low: int, high: int, points: int = 200):
    step = (high - low) / (points - 1)
    xs = [low + i * step for i in range(points)]
    return xs, [float(law.value(Fraction(x))) for x in xs]


def _counted(report: LawReport, law: Law, values: Sequence[int]):
    # the sizes counted for real: all of them for a fitted law, the checks of a symbolic one
    # (its other rows are the law's own values)
    if report.route == "symbolic":
        return [n for n, _ in law.counts], [c for _, c in law.counts]
    return [row.size for row in report.rows], list(values)


def _series(reports: Sequence[LawReport]):
    # (label, report, law or NoLaw, values per row): one per model; with one model, its total
    # and then every family
    if len(reports) != 1:
        return [(r.label, r, r.law, [row.total for row in r.rows]) for r in reports]
    report = reports[0]
    series = [("total", report, report.law, [row.total for row in report.rows])]
    series += [(family, report, report.by_family[family],
                [row.by_family.get(family, 0) for row in report.rows])
               for family in report.families]
    return series


def plot_laws(reports: Sequence[LawReport], path: str, title: str = "") -> None:
    """Draw each law as a curve over its sizes and its real counts as points (every size of a
    fitted law; the check sizes of a symbolic one), log-log, and save to ``path`` (.png, .pdf
    or .svg): one color per model, or, for one model, its total and every family (a family
    with no MACs at a size is left out there: log axes). A series without a law has its points
    joined by a dashed line and "(no law)" in the legend; the legend says which route gave
    each law.

    Raises:
        ValueError: a bad ``path`` (:func:`check_plot_path`) or no reports.
        ImportError: matplotlib is not installed (``pip install fvcore_ext[plot]``).
    """
    check_plot_path(path)
    if not reports:
        raise ValueError("nothing to plot: no reports")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'fvcore_ext[plot]'") from None
    # a Figure on its own Agg canvas: pyplot's figures and matplotlib's backend are the user's
    figure = Figure(figsize=(7, 5.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for index, (label, report, law, values) in enumerate(_series(reports)):
        color = f"C{index % 10}"
        sizes = [row.size for row in report.rows]
        if isinstance(law, Law):
            xs, ys = _curve(law, min(sizes), max(sizes))
            keep = [(x, y) for x, y in zip(xs, ys) if y > 0]
            route = "one symbolic run" if report.route == "symbolic" else "fitted"
            axes.plot([x for x, _ in keep], [y for _, y in keep], "-", color=color,
                      label=f"{label}: {format_law(law)} "
                            f"({degree_text(law, report.square_name)}; {route})")
            counted = [(n, c) for n, c in zip(*_counted(report, law, values)) if c > 0]
            axes.plot([n for n, _ in counted], [c for _, c in counted], "o", color=color)
        else:
            points = [(n, c) for n, c in zip(sizes, values) if c > 0]
            axes.plot([n for n, _ in points], [c for _, c in points], "o--", color=color,
                      label=f"{label} (no law)")
    variables = "/".join(sorted({r.variable for r in reports}))
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(variables)
    axes.set_ylabel("MACs")
    axes.set_title(title or (f"{reports[0].label}: " if len(reports) == 1 else "")
                   + f"MACs over {variables} (points: counts; lines: exact laws)")
    axes.grid(True, which="both", alpha=0.3)
    # below the axes: the points at small sizes stay visible
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12),
                frameon=False)
    figure.tight_layout()
    figure.savefig(path)
