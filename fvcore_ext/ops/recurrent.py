"""Reader of the recurrent layers: aten::lstm, gru, rnn_tanh, rnn_relu.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall, TensorArg
from .registry import (aten_ops, bool_scalar, counts, int_scalar)

@counts(*aten_ops("lstm", "gru", "rnn_tanh", "rnn_relu"), family="recurrent")
def _recurrent(call: OpCall) -> Cost:
    # lstm.input(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    # batch_first) or, for packed sequences, lstm.data(data, batch_sizes, hx, params,
    # has_biases, num_layers, dropout, train, bidirectional); gru and rnn_* alike. params holds,
    # per layer and direction, w_ih, w_hh, [b_ih, b_hh], [w_hr].
    first = 2 if isinstance(call.arg(3), bool) else 3      # params, then has_biases
    params = call.scalar(first)
    if not isinstance(params, list) or not all(isinstance(p, TensorArg) and p.shape
                                               for p in params):
        raise CannotCount("the weights (params) are not a traced list of tensors")
    mode = call.kind.split("::")[1]
    groups = int_scalar(call, first + 2) * (2 if bool_scalar(call, first + 5, False) else 1)
    if len(params) % groups:
        raise CannotCount(f"{len(params)} weights do not split into {groups} layers and "
                          f"directions")
    per_group = len(params) // groups
    return rules.rnn_macs(mode, rules.numel(call.shape(0)[:-1]),
                          [p.shape for p in params if len(p.shape) == 2],
                          [params[g * per_group].shape for g in range(groups)])
