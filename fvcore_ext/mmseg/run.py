"""``python -m fvcore_ext.run [--preset paper] SCRIPT.py ARGS...``: run an existing script, such
as mmseg's ``tools/analysis_tools/get_flops.py``, unmodified, with mmengine counting through the
pack.

For the duration of the script (:func:`run_script`):
- mmengine's ``get_model_complexity_info`` is the pack's, in ``mmengine.analysis`` and the
  modules that define it (:func:`fvcore_ext.mmseg.mmengine_analysis.pack_in_mmengine`): it accepts
  ``input_shape`` and ``inputs`` together, which mmseg 1.2.2's script passes and mmengine
  ≥ 0.7.3 refuses, and counts with the pack's handles under ``--preset``;
- every ``FlopAnalyzer`` the script builds counts with the pack's handles;
- ``mmcv._ext`` has its announced stand-in when the real one is missing (mmcv-lite), so mmseg
  imports (``--no-mmcv-standin`` turns this off);
- ``sys.argv`` is ``[SCRIPT.py, *ARGS]`` and the script's folder is first on ``sys.path``, as
  under ``python SCRIPT.py``.
Then mmengine, ``sys.argv`` and ``sys.path`` are restored. The stand-in stays: modules mmcv
imported hold it.

After the script's own output it prints the pack's lines for each count
(:func:`fvcore_ext.mmseg.get_flops.pack_lines`): the unit (mmengine's "flops" are MACs), the preset,
the inputs counted and what was not counted. On mmseg's script the whole output equals
``python -m fvcore_ext.get_flops`` with the same arguments.

The default preset is ``paper``: what mmengine's own handles count, so a script reports the
numbers it was written to report. Exit status: the script's (``sys.exit(n)`` is passed on,
with a line on stderr saying so when it is not 0; a finished script is 0), 1 with a one-line
message when the script raises (``--traceback`` prints the traceback instead), 2 when the
script cannot be read.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
import warnings
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

from .get_flops import pack_lines
from .mmengine_analysis import ComplexityCall, pack_in_mmengine
from ..rules import PRESETS

__all__ = ["main", "run_script"]

PROG = "python -m fvcore_ext.run"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Run a script (mmseg's tools/analysis_tools/get_flops.py, or any "
                               "script that calls mmengine's get_model_complexity_info) "
                               "unmodified, with mmengine counting through fvcore_ext.")
    p.add_argument("--preset", choices=PRESETS, default="paper",
                   help="counting rules (default: paper, what mmengine's own handles count)")
    p.add_argument("--strict", action="store_true",
                   help="fail instead of counting 0 where an op is left out: an op with no "
                        "rule, or one a rule cannot read")
    p.add_argument("--no-mmcv-standin", action="store_true",
                   help="do not stand in for a missing mmcv._ext")
    p.add_argument("--traceback", action="store_true",
                   help="print the full traceback when the script raises")
    p.add_argument("script", help="the Python script to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    return p


@contextmanager
def _script_argv_and_path(script: str, args: Sequence[str]) -> Iterator[None]:
    # What `python SCRIPT ARGS` sets up: sys.argv and the script's folder first on sys.path.
    argv, path = sys.argv[:], sys.path[:]
    sys.argv[:] = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        yield
    finally:
        sys.argv[:] = argv
        sys.path[:] = path


def run_script(script: str, args: Sequence[str] = (), preset: str = "paper",
               strict: bool = False, mmcv_standin: bool = True
               ) -> Tuple[int, List[ComplexityCall], bool]:
    """Run ``script`` as ``__main__`` (``runpy.run_path``) with ``args`` as its arguments, with
    mmengine counting through the pack (see the module docstring); restore everything after.

    Args:
        script: path of a Python script.
        args: its command-line arguments (``sys.argv[1:]`` while it runs).
        preset: "paper" (default, what mmengine's handles count) or "full".
        strict: raise :class:`fvcore_ext.UncountableOpError` where an op is left out of a
            ``get_model_complexity_info`` count (an op with no rule, or one a rule cannot read).
        mmcv_standin: install the ``mmcv._ext`` stand-in when the real one is missing.

    Returns:
        ``(status, calls, standin)``: the script's exit status (0 when it returns, the code of
        its ``SystemExit``; a non-integer code is printed to stderr and gives 1, as Python
        does), one :class:`ComplexityCall` per ``get_model_complexity_info`` call it made
        (MACs), and whether the mmcv stand-in was active.

    Raises:
        FileNotFoundError: no such script. ValueError: unknown preset. Whatever the script
        raises, other than ``SystemExit``, after mmengine, ``sys.argv`` and ``sys.path`` are
        restored.
    """
    if not os.path.isfile(script):
        raise FileNotFoundError(f"script {script} does not exist")
    standin = False
    if mmcv_standin:
        from ..runtime.standins import install_mmcv_ext_standin
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # announced in the pack's lines instead
            standin = install_mmcv_ext_standin()
    with pack_in_mmengine(preset, strict) as calls, _script_argv_and_path(script, args):
        try:
            runpy.run_path(script, run_name="__main__")
            status = 0
        except SystemExit as exit_:
            status = _exit_status(exit_.code)
    return status, list(calls), standin


def _exit_status(code) -> int:
    # Python's own handling of SystemExit's code.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _where(error: BaseException, script: str) -> str:
    # The script's innermost line in the traceback, so a one-line message says where.
    target = os.path.abspath(script)
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(f.filename) == target]
    return f" ({os.path.basename(script)}, line {frames[-1].lineno})" if frames else ""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI (see the module docstring) and return the exit status: the script's (a
    status other than 0 is named on stderr, ``... exited with status 3 (sys.exit)``), 1 with a
    one-line message on stderr when it raises, 2 when the script cannot be read."""
    args = _parser().parse_args(argv)
    if not os.path.isfile(args.script):
        # what `python SCRIPT` does: status 2
        print(f"{PROG}: error: script {args.script} does not exist", file=sys.stderr)
        return 2
    try:
        status, calls, standin = run_script(args.script, args.args, args.preset, args.strict,
                                            not args.no_mmcv_standin)
    except Exception as error:  # whatever the script raises
        return _report(error, args)
    for number, call in enumerate(calls, 1):
        if len(calls) > 1:
            print(f"Count {number} of {len(calls)} (get_model_complexity_info calls):")
        print("\n".join(pack_lines(call, standin and number == len(calls))))
    if not calls and status == 0:
        print(f"{PROG}: {args.script} never called get_model_complexity_info; any FlopAnalyzer "
              f"it built counted with the pack's handles (preset {args.preset})",
              file=sys.stderr)
    if status != 0:
        # sys.exit(3) prints nothing of its own: say that the status is the script's.
        print(f"{PROG}: {args.script} exited with status {status} (sys.exit)", file=sys.stderr)
    return status


def _report(error: BaseException, args) -> int:
    if args.traceback:
        traceback.print_exception(type(error), error, error.__traceback__)
        return 1
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    print(f"{PROG}: {args.script} raised {type(error).__name__}{_where(error, args.script)}"
          + (f": {text}" if text else ""), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
