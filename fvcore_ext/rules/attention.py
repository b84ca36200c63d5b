"""Attention: ``aten::scaled_dot_product_attention`` and PyTorch's fused fast paths.

A fused op costs what its explicit implementation costs (``docs/conventions.md``):
``softmax((q @ kᵀ) * scale [+ float mask]) @ v``. The two matmuls are ``core``; the scale, the
softmax and an additive float mask are ``elementwise`` (``B·H·L·S`` each). A boolean mask or
``is_causal`` is a ``masked_fill`` (0), and causal attention is counted dense, as its explicit
implementation computes it.
"""
from __future__ import annotations

import itertools
from typing import Optional, Sequence

from .cost import Cost, numel, size_int
from .normalization import norm_macs

__all__ = ["native_mha_macs", "sdpa_macs", "transformer_encoder_layer_macs"]

Shape = Sequence[int]


def _batch(*shapes: Shape) -> int:
    # Leading dims broadcast; with GQA/MQA k and v have fewer heads than q and every query head
    # is computed, so each dim counts at the largest of the shapes.
    dims = itertools.zip_longest(*(reversed(s[:-2]) for s in shapes), fillvalue=1)
    return numel([max(size_int(d) for d in column) for column in dims])


def sdpa_macs(q: Shape, k: Shape, v: Shape, mask: Optional[str] = None) -> Cost:
    """``aten::scaled_dot_product_attention`` with q ``(B, Hq, L, E)``, k ``(B, Hkv, S, E)``,
    v ``(B, Hkv, S, Ev)`` (any number of leading dims, including none).

    core: ``B·Hq·L·S·(E + Ev)``, the two matmuls at the query head count. elementwise:
    ``B·Hq·L·S`` for the scale, ``B·Hq·L·S`` for the softmax and, when ``mask == "float"``,
    ``B·Hq·L·S`` for adding the mask. ``mask`` is ``None``, ``"bool"`` or ``"float"``; ``is_causal``
    is a boolean mask. Dropout costs 0. Source: ``docs/conventions.md`` (Attention).
    Leading dims broadcast as in the explicit implementation: the scores take those of q and k,
    ``attn @ v`` those of all three.

    Raises:
        ValueError: ``mask`` is not one of the three values, or q and k feature sizes differ.
    """
    if mask not in (None, "bool", "float"):
        raise ValueError(f"mask must be None, 'bool' or 'float', not {mask!r}")
    if q[-1] != k[-1]:
        raise ValueError(f"query features {q[-1]} != key features {k[-1]}")
    length, source = size_int(q[-2]), size_int(k[-2])
    scores = _batch(q, k) * length * source
    elementwise = 2 * scores + (scores if mask == "float" else 0)
    attend = _batch(q, k, v) * length * source * size_int(v[-1])
    return Cost(core=scores * size_int(q[-1]) + attend, elementwise=elementwise)


def native_mha_macs(query: Shape, key: Shape, num_heads: int, need_weights: bool,
                    average_attn_weights: bool, has_mask: bool) -> Cost:
    """``aten::_native_multi_head_attention`` (``nn.MultiheadAttention``'s fast path under
    ``torch.no_grad()``): what ``F.multi_head_attention_forward`` computes for the same call.

    query ``(B, L, E)``, key ``(B, S, E)`` (batch first; the fast path requires it).
    core: in-projection ``B·L·E·E + 2·B·S·E·E`` (``B·L·E·3E`` for self-attention), attention
    matmuls ``2·B·L·S·E``, out-projection ``B·L·E·E``. elementwise: with ``need_weights`` the
    slow path scales q (``B·L·E``), takes a softmax (``B·H·L·S``) and, with
    ``average_attn_weights``, a mean over heads (``B·H·L·S``); without, it calls SDPA (scale and
    softmax, ``B·H·L·S`` each). Any mask is a float mask there (``F._canonical_mask``): ``B·H·L·S``.
    Source: ``torch/nn/functional.py`` ``multi_head_attention_forward`` (torch 2.13).
    """
    b, l, e = (size_int(d) for d in query)
    s = size_int(key[-2])
    scores = b * num_heads * l * s
    core = b * l * e * e + 2 * b * s * e * e + 2 * b * l * s * e + b * l * e * e
    if need_weights:
        elementwise = b * l * e + scores + (scores if average_attn_weights else 0)
    else:
        elementwise = 2 * scores
    if has_mask:
        elementwise += scores
    return Cost(core=core, elementwise=elementwise)


def transformer_encoder_layer_macs(x: Shape, num_heads: int, ffn_dim: int, use_gelu: bool,
                                   norm_affine: bool, has_mask: bool) -> Cost:
    """``aten::_transformer_encoder_layer_fwd`` (``nn.TransformerEncoderLayer``'s fast path):
    what the module's slow path computes for x ``(B, L, E)``.

    Self-attention without weights (:func:`native_mha_macs`, ``need_weights=False``), two
    LayerNorms (``5·B·L·E`` each with affine, as fvcore counts them: ``core``), the feed-forward
    linears ``2·B·L·E·F`` (core), GELU ``B·L·F`` if ``use_gelu`` (ReLU is 0) and the two residual
    adds ``2·B·L·E`` (elementwise). Source: ``torch/nn/modules/transformer.py``
    ``TransformerEncoderLayer.forward``.
    """
    b, l, e = (size_int(d) for d in x)
    attention = native_mha_macs(x, x, num_heads, need_weights=False,
                                average_attn_weights=False, has_mask=has_mask)
    norms = norm_macs(x, norm_affine) + norm_macs(x, norm_affine)
    ffn = Cost(core=2 * b * l * e * ffn_dim,
               elementwise=(b * l * ffn_dim if use_gelu else 0) + 2 * b * l * e)
    return attention + norms + ffn
