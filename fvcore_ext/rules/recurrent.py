"""Recurrent layers: ``aten::lstm``, ``aten::gru``, ``aten::rnn_tanh``, ``aten::rnn_relu`` (the
fused ops ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` trace to; RNN-T prediction networks in
transformers' Parakeet and Nemotron ASR models).

Every weight matrix meets every token once, in every layer and direction: ``tokens · Σ
numel(W)`` MACs over the 2-D weights (``w_ih``, ``w_hh`` and a projection ``w_hr``), biases not
counted, as fvcore counts ``linear``. That part is core. Under the **full** preset the cell's
elementwise ops count too, per hidden unit and step, as torch's cell equations write them
(``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` docs), one per op:

- LSTM: 4 adds of the two gate products, 3 sigmoids, 1 tanh, ``c' = f⊙c + i⊙g`` (3),
  ``h' = o⊙tanh(c')`` (2): 13.
- GRU: 2 adds and 2 sigmoids for r and z, ``n = tanh(W_in x + r⊙(W_hn h))`` (3),
  ``h' = (1 − z)⊙n + z⊙h`` (4): 11.
- RNN: the add and the tanh: 2; with ReLU the add only: 1 (ReLU costs 0).
"""
from __future__ import annotations

from typing import Sequence

from .cost import Cost, numel

__all__ = ["ELEMENTWISE_PER_HIDDEN_UNIT", "GATES", "rnn_macs"]

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
ELEMENTWISE_PER_HIDDEN_UNIT = {"lstm": 13, "gru": 11, "rnn_tanh": 2, "rnn_relu": 1}


def rnn_macs(mode: str, tokens: int, weights: Sequence[Sequence[int]],
             input_weights: Sequence[Sequence[int]]) -> Cost:
    """A recurrent layer of ``mode`` (``"lstm"``, ``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"``) run
    over ``tokens`` = steps × batch: ``tokens · Σ numel(W)`` core MACs over ``weights``, the
    2-D weight matrices of all layers and directions, plus ``ELEMENTWISE_PER_HIDDEN_UNIT[mode]
    · tokens · H`` elementwise, where H, the hidden units of all layers and directions, is read
    from ``input_weights``, each layer and direction's ``w_ih`` of shape ``(GATES[mode]·h, in)``.
    ``ValueError`` on an unknown mode."""
    if mode not in GATES:
        raise ValueError(f"unknown recurrent mode {mode!r}; expected one of {', '.join(GATES)}")
    hidden_units = sum(int(w[0]) for w in input_weights) // GATES[mode]
    return Cost(core=tokens * sum(numel(w) for w in weights),
                elementwise=ELEMENTWISE_PER_HIDDEN_UNIT[mode] * tokens * hidden_units)
