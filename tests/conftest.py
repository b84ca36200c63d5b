"""Tests that run anywhere: a test module that cannot be imported because an optional extra
is not installed (mmsegmentation, mamba-ssm, torchprofile, ...) is skipped, naming the extra,
instead of stopping the whole collection (``pytest tests -k hf`` in a venv with the ``hf`` extra
only). Any other import error still fails the collection.
"""
import re

import pytest

# top-level module -> the extra of setup.cfg (or the package) that brings it
OPTIONAL = {
    "mmseg": "mmseg", "mmengine": "mmseg", "mmcv": "mmseg", "mmdet": "mmseg", "ftfy": "mmseg",
    "mamba_ssm": "mamba (mamba-ssm)", "causal_conv1d": "mamba (causal-conv1d)",
    "triton": "mamba", "einops": "mamba", "torchprofile": "torchprofile",
    "transformers": "hf", "matplotlib": "plot", "timm": "timm", "hypothesis": "test",
}

_MISSING = re.compile(r"(?:No module named '([\w.]+)'|import of ([\w.]+) halted; None in "
                      r"sys\.modules)")


def missing_extra(text: str):
    """The optional module an import error's text names, or ``None``."""
    for match in _MISSING.finditer(text):
        name = (match.group(1) or match.group(2)).split(".")[0]
        if name in OPTIONAL:
            return name
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not isinstance(collector, pytest.Module):
        return
    name = missing_extra(str(report.longrepr))
    if name is None:
        return
    report.outcome = "skipped"
    report.longrepr = (str(collector.path), 0,
                       f"Skipped: {name} is not installed (the {OPTIONAL[name]} extra)")
    report.result = []
