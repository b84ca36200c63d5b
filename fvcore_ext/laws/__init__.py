"""Cost laws: a model's MAC count as an exact polynomial in one varied input size (an image side S,
a token count, a sequence or cache length). This package sits above the engines (it counts with
them) and below the command line."""
from .fit import Law, NoLaw, degree_text, fit_law, format_law

__all__ = ["Law", "NoLaw", "degree_text", "fit_law", "format_law"]
