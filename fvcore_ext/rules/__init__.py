"""The counting rules, written once: pure functions from shapes (and flags) to :class:`Cost`.

Each module covers one family of ops; both tool adapters (``fvcore_ext.engines.jit.handles``,
``torchprofile_ext``) read shapes from their graph and call these functions.
"""
from .attention import native_mha_macs, sdpa_macs, transformer_encoder_layer_macs
from .backward import (NORM_BACKWARD_PER_ELEMENT, RMS_NORM_BACKWARD_PER_ELEMENT,
                       WEIGHT_NORM_BACKWARD_PER_ELEMENT, conv_backward_macs,
                       norm_backward_macs, rms_norm_backward_macs, sdpa_backward_macs,
                       weight_norm_backward_macs)
from .cost import PRESETS, Cost, check_mac_count, check_preset, numel
from .elementwise import elementwise_macs, reduction_macs, sum_of_terms_macs
from .linalg import (addmm_macs, bilinear_macs, bmm_macs, broadcast_shapes, conv_macs, einsum_macs,
                     grouped_mm_macs, linear_macs, matmul_macs, triangular_solve_macs,
                     trilinear_macs)
from .mamba import (SCAN_BACKWARD_PER_POSITION, SCAN_BACKWARD_PER_STATE, bimamba_inner_macs,
                    causal_conv1d_backward_macs, causal_conv1d_macs,
                    mamba_inner_backward_macs, mamba_inner_macs, selective_scan_backward_macs,
                    selective_scan_macs)
from .normalization import batch_norm_macs, norm_macs, rms_norm_macs, weight_norm_macs
from .recurrent import rnn_macs
from .spectral import fft_macs
from .ssd import (gated_norm_backward_macs, gated_norm_macs,
                  mamba_split_conv1d_scan_backward_macs, mamba_split_conv1d_scan_macs,
                  ssd_chunk_scan_backward_macs, ssd_chunk_scan_macs, ssd_layout)
from .upsample import MACS_PER_OUTPUT, grid_sample_macs, upsample_macs

__all__ = [
    "Cost", "PRESETS", "check_mac_count", "check_preset", "numel",
    "addmm_macs", "bilinear_macs", "trilinear_macs", "bmm_macs", "broadcast_shapes", "conv_macs", "einsum_macs", "grouped_mm_macs",
    "linear_macs", "matmul_macs", "triangular_solve_macs", "rnn_macs", "fft_macs",
    "batch_norm_macs", "norm_macs", "rms_norm_macs", "weight_norm_macs",
    "elementwise_macs", "reduction_macs", "sum_of_terms_macs",
    "native_mha_macs", "sdpa_macs", "transformer_encoder_layer_macs",
    "MACS_PER_OUTPUT", "grid_sample_macs", "upsample_macs",
    "bimamba_inner_macs", "causal_conv1d_macs", "mamba_inner_macs", "selective_scan_macs",
    "causal_conv1d_backward_macs", "mamba_inner_backward_macs", "selective_scan_backward_macs",
    "SCAN_BACKWARD_PER_POSITION", "SCAN_BACKWARD_PER_STATE",
    "gated_norm_macs", "mamba_split_conv1d_scan_macs", "ssd_chunk_scan_macs", "ssd_layout",
    "gated_norm_backward_macs", "mamba_split_conv1d_scan_backward_macs",
    "ssd_chunk_scan_backward_macs",
    "NORM_BACKWARD_PER_ELEMENT", "RMS_NORM_BACKWARD_PER_ELEMENT", "conv_backward_macs",
    "norm_backward_macs", "rms_norm_backward_macs", "sdpa_backward_macs",
    "WEIGHT_NORM_BACKWARD_PER_ELEMENT", "weight_norm_backward_macs",
]
