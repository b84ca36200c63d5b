"""Write, into a folder, small packages laid out and failing on CPU the way VMamba's and Vim's
model code does, for tests/test_repo_routes.py. Each file says which upstream file it stands
for; none copies it."""
from pathlib import Path

# VMamba classification/models/csm_triton.py: cross_scan_fn and cross_merge_fn enter
# torch.cuda.device(x.device) before choosing the torch path, which raises on CPU and meta.
CSM_TRITON = '''
import torch


class CrossScanF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):                     # (B, C, H, W) -> (B, 4, C, H * W)
        B, C, H, W = x.shape
        y = x.new_empty((B, 4, C, H * W))
        y[:, 0] = x.flatten(2, 3)
        y[:, 1] = x.transpose(2, 3).flatten(2, 3)
        y[:, 2:4] = torch.flip(y[:, 0:2], dims=[-1])
        return y


class CrossMergeF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ys):                    # (B, 4, C, H, W) -> (B, C, H * W)
        B, K, C, H, W = ys.shape
        ys = ys.view(B, K, C, -1)
        ys = ys[:, 0:2] + ys[:, 2:4].flip(dims=[-1]).view(B, 2, C, -1)
        return ys[:, 0] + ys[:, 1].view(B, -1, W, H).transpose(2, 3).contiguous().view(B, C, -1)


def cross_scan_fn(x, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
                  force_torch=False):
    with torch.cuda.device(x.device):
        return CrossScanF.apply(x)


def cross_merge_fn(y, in_channel_first=True, out_channel_first=True, one_by_one=False, scans=0,
                   force_torch=False):
    with torch.cuda.device(y.device):
        return CrossMergeF.apply(y)
'''

# VMamba classification/models/mamba2/ssd_combined.py: its own copy of mamba-ssm 2.0's, whose
# host function launches Triton kernels (here it fails as that launch does on CPU).
SSD_COMBINED = '''
import torch


def _mamba_chunk_scan_combined_fwd(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                                   initial_states=None, seq_idx=None, dt_softplus=False,
                                   dt_limit=(0.0, float("inf"))):
    with torch.cuda.device(x.device.index):
        raise RuntimeError("a Triton kernel launch")


class MambaChunkScanCombinedFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                initial_states=None, seq_idx=None, dt_softplus=False,
                dt_limit=(0.0, float("inf")), return_final_states=False):
        out, out_x, dt_out, dA_cumsum, states, final_states = _mamba_chunk_scan_combined_fwd(
            x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias,
            initial_states=initial_states, seq_idx=seq_idx, dt_softplus=dt_softplus,
            dt_limit=dt_limit)
        return out if not return_final_states else (out, final_states)


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                              initial_states=None, seq_idx=None, dt_softplus=False,
                              dt_limit=(0.0, float("inf")), return_final_states=False):
    return MambaChunkScanCombinedFn.apply(x, dt, A, B, C, chunk_size, D, z, dt_bias,
                                          initial_states, seq_idx, dt_softplus, dt_limit,
                                          return_final_states)
'''

# VMamba classification/models/vmamba.py binds both with `from .csm_triton import ...` and
# `from .mamba2... import ...` at import time.
VMAMBA = '''
import torch
from torch import nn

try:
    from .csm_triton import cross_scan_fn, cross_merge_fn
except ImportError:
    from csm_triton import cross_scan_fn, cross_merge_fn
from .mamba2.ssd_combined import mamba_chunk_scan_combined


class TinySS2D(nn.Module):
    """Cross scan + merge over a (B, 8, H, W) map, a linear, then a 2-head SSD scan with
    1 group of 4 states; returns (B, H*W, 8)."""

    def __init__(self, dim=8, heads=2, states=4):
        super().__init__()
        self.heads, self.states = heads, states
        self.proj = nn.Linear(dim, dim, bias=False)
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.D = nn.Parameter(torch.ones(heads))

    def forward(self, x):
        B, C, H, W = x.shape
        xs = cross_scan_fn(x)
        y = cross_merge_fn(xs.view(B, 4, C, H, W))
        seq = self.proj(y.transpose(1, 2))                        # (B, L, C)
        xh = seq.reshape(B, H * W, self.heads, C // self.heads)
        dt = seq[..., :self.heads].contiguous()
        bc = seq[..., :self.states].unsqueeze(2).contiguous()     # (B, L, 1, N)
        out = mamba_chunk_scan_combined(xh, dt, -torch.exp(self.A_log), bc, bc, 8, D=self.D)
        return out.reshape(B, H * W, C)


def tiny_model():
    return TinySS2D()
'''

# hustvl/Vim mamba-1p1p1/mamba_ssm/ops/triton/layernorm.py (mamba-ssm 1.x): the eight-argument
# LayerNormFn, whose host function launches Triton inside torch.cuda.device(x.device.index).
VIM_LAYERNORM = '''
import torch


def _layer_norm_fwd(x, weight, bias, eps, residual=None, out_dtype=None, residual_dtype=None,
                    is_rms_norm=False):
    with torch.cuda.device(x.device.index):
        raise RuntimeError("a Triton kernel launch")


def rms_norm_fn(x, weight, bias=None, residual=None, prenorm=False, residual_in_fp32=False,
                eps=1e-6):
    y, mean, rstd, residual_out = _layer_norm_fwd(x, weight, bias, eps, residual,
                                                  is_rms_norm=True)
    return y if not prenorm else (y, residual_out)
'''

# mamba-1p1p1/mamba_ssm/utils/generation.py imports names transformers 5 removed.
VIM_GENERATION = '''
from transformers.generation import GreedySearchDecoderOnlyOutput, SampleDecoderOnlyOutput
'''


def _write(root: Path, files: dict) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def write_vmamba_like(root: Path) -> None:
    """``vmamba_like/models/{vmamba,csm_triton}.py`` and ``.../mamba2/ssd_combined.py``."""
    _write(root, {"vmamba_like/__init__.py": "", "vmamba_like/models/__init__.py": "",
                  "vmamba_like/models/csm_triton.py": CSM_TRITON,
                  "vmamba_like/models/mamba2/__init__.py": "",
                  "vmamba_like/models/mamba2/ssd_combined.py": SSD_COMBINED,
                  "vmamba_like/models/vmamba.py": VMAMBA})


def write_vim_like(root: Path, generation: bool = False) -> None:
    """A ``mamba_ssm`` package as Vim's mamba-1p1p1 lays it out: ``ops/triton/layernorm.py``,
    and with ``generation`` its ``utils/generation.py``."""
    files = {"mamba_ssm/__init__.py": "", "mamba_ssm/ops/__init__.py": "",
             "mamba_ssm/ops/triton/__init__.py": "",
             "mamba_ssm/ops/triton/layernorm.py": VIM_LAYERNORM}
    if generation:
        files.update({"mamba_ssm/utils/__init__.py": "",
                      "mamba_ssm/utils/generation.py": VIM_GENERATION})
    _write(root, files)
