"""Trace any model: positional or named inputs, outputs of any nesting.

The JIT tracer accepts only tensors, tuples and lists as outputs, and positional inputs.
:class:`TraceAdapter` wraps a model so that both fvcore and torchprofile can trace it; the
wrapped model's module names gain a ``model.`` prefix, which :func:`unwrap_name` removes.
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
from torch import nn

__all__ = ["TraceAdapter", "eval_mode", "flatten_tensors", "unwrap_name"]

_WRAPPED = "model"


def flatten_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``obj``, depth first."""
    # Outputs may be tensors, tuples, lists, dicts or dataclasses (transformers' ModelOutput).
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from flatten_tensors(value)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from flatten_tensors(getattr(obj, f.name))
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from flatten_tensors(value)


class TraceAdapter(nn.Module):
    """Calls the model with positional or named inputs and flattens its output to a tuple of
    tensors, which is all the JIT tracer accepts."""

    def __init__(self, model: nn.Module, input_names: Optional[Sequence[Optional[str]]]):
        super().__init__()
        setattr(self, _WRAPPED, model)
        self.input_names = list(input_names or [])

    def forward(self, *args: torch.Tensor):
        model = getattr(self, _WRAPPED)
        positional = [a for a, n in zip(args, self.input_names + [None] * len(args)) if n is None]
        named = {n: a for a, n in zip(args, self.input_names) if n is not None}
        outputs = tuple(flatten_tensors(model(*positional, **named)))
        if not outputs:
            raise ValueError("the model returned no tensor")
        return outputs


def unwrap_name(name: str) -> str:
    """A module or scope name inside :class:`TraceAdapter` as the user's model names it."""
    if name == _WRAPPED:
        return ""
    return name[len(_WRAPPED) + 1:] if name.startswith(_WRAPPED + ".") else name




@contextmanager
def eval_mode(model: nn.Module) -> Iterator[bool]:
    """Put every module of ``model`` in eval mode and restore each one's own mode on exit.
    Yields whether ``model`` itself was in train mode."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield modes.get(model, False)
    finally:
        for module, training in modes.items():
            module.training = training
