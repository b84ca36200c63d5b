"""Cost laws: a model's MAC count as an exact polynomial in one varied input size (an image side S,
a token count, a sequence or cache length). ``fit_law`` fits counts (exact, checked on held-out
sizes); ``count_law`` / ``compare_laws`` give the law of the total and every family, from one
symbolic run where the model allows it (``symbolic``, ``conditions``), else from counts at each
size; ``plot`` draws them. This package sits above the engines (it counts with them) and
below the command line (``python -m fvcore_ext law``); ``docs/laws.md``."""
from .count import (LawComparison, LawReport, LawRow, NoSymbolicLaw, compare_laws, count_law,
                    law_report)
from .fit import Law, NoLaw, degree_text, fit_law, format_law

__all__ = ["Law", "LawComparison", "LawReport", "LawRow", "NoLaw", "NoSymbolicLaw", "compare_laws",
           "count_law",
           "degree_text", "fit_law", "format_law", "law_report"]
