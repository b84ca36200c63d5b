"""The stand-in kernels: right shapes, loud on unknown calls, never over a real extension."""
import sys
import types

import pytest
import torch

from fvcore_ext import standins


@pytest.fixture
def no_standins():
    saved = {n: sys.modules.pop(n) for n in standins.STANDIN_NAMES if n in sys.modules}
    yield
    standins.remove_standin_kernels()
    sys.modules.update(saved)


def test_shapes_of_every_entry_point(no_standins):
    with pytest.warns(UserWarning), standins.standin_kernels() as active:
        assert set(active) == set(standins.STANDIN_NAMES)
        import selective_scan_cuda, causal_conv1d_cuda  # noqa: E401
        import selective_scan_cuda_oflex, selective_scan_cuda_core  # noqa: E401
        u, A, z = torch.randn(2, 8, 5000), torch.randn(8, 4), torch.randn(2, 8, 5000)
        out, x, out_z = selective_scan_cuda.fwd(u, u, A, None, None, None, z, None, True)
        assert out.shape == out_z.shape == u.shape and x.shape == (2, 8, 3, 8)
        assert len(selective_scan_cuda.fwd(u, u, A, None, None, None, None, None, True)) == 2
        out, x = selective_scan_cuda_oflex.fwd(u.half(), u, A, None, None, None, None, True, 1, True)
        assert out.dtype == torch.float32 and out.shape == u.shape
        out, x = selective_scan_cuda_core.fwd(u, u, A, None, None, None, None, True, 1)
        assert out.shape == u.shape
        conv_out = torch.full((2, 8, 16), 7.0)
        x16, w = torch.randn(2, 8, 16), torch.randn(8, 4)
        assert causal_conv1d_cuda.causal_conv1d_fwd(x16, w, None, None, None, conv_out, None,
                                                    True) is None
        assert torch.count_nonzero(conv_out) == 0
        assert causal_conv1d_cuda.causal_conv1d_fwd(x16, w, None, None, None, None, True).shape \
            == x16.shape
    assert not any(n in sys.modules for n in standins.STANDIN_NAMES)


def test_announced_and_loud_on_unknown_calls(no_standins):
    with pytest.warns(UserWarning, match="stand-in kernels active for selective_scan_cuda"):
        standins.install_standin_kernels(["selective_scan_cuda"])
    import selective_scan_cuda
    with pytest.raises(AttributeError, match="provides only fwd, not 'bwd'"):
        selective_scan_cuda.bwd
    with pytest.raises(KeyError, match="no stand-in"):
        standins.install_standin_kernels(["flash_attn_cuda"])


def test_never_replaces_a_real_extension(no_standins):
    real = types.ModuleType("selective_scan_cuda")
    sys.modules["selective_scan_cuda"] = real
    assert standins.install_standin_kernels(["selective_scan_cuda"]) == []
    assert sys.modules["selective_scan_cuda"] is real
    assert standins.remove_standin_kernels() == []
    del sys.modules["selective_scan_cuda"]
