"""The stand-in kernels: right shapes, loud on unknown calls, never over a real extension."""
import sys
import types

import pytest
import torch

from fvcore_ext import standins


@pytest.fixture
def no_standins():
    """No extension stand-in in sys.modules during the test (the Triton functions may stay
    replaced: other test modules installed them at import and still need them)."""
    saved = {n: sys.modules.pop(n) for n in standins.EXTENSION_NAMES if n in sys.modules}
    yield
    standins.remove_standin_kernels(standins.EXTENSION_NAMES)
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
    assert not any(n in sys.modules for n in standins.EXTENSION_NAMES)


def test_backward_entry_points(no_standins):
    with pytest.warns(UserWarning), standins.standin_kernels():
        import selective_scan_cuda, causal_conv1d_cuda  # noqa: E401
        u, A, B = torch.randn(2, 8, 30), torch.randn(8, 4), torch.randn(2, 1, 4, 30)
        z, dz = torch.randn(2, 8, 30), torch.full((2, 8, 30), 5.0)
        grads = selective_scan_cuda.bwd(u, u, A, B, B, torch.ones(8), z, None, u, None, u, dz,
                                        True, True)
        du, ddelta, dA, dB, dC, dD, ddelta_bias, dz_out, out_z = grads
        assert du.shape == ddelta.shape == out_z.shape == u.shape and dA.shape == A.shape
        assert dB.shape == dC.shape == B.shape and dD.shape == (8,) and ddelta_bias is None
        assert dz_out is dz and not dz.any()            # a passed-in dz is filled in place
        assert len(selective_scan_cuda.bwd(u, u, A, B, B, None, None, None, u, None, None,
                                           None, True, False)) == 7

        x, w, bias = torch.randn(2, 8, 16), torch.randn(8, 4), torch.randn(8)
        dx, dw, db = torch.full_like(x, 2.0), torch.full_like(w, 2.0), torch.full_like(bias, 2.0)
        # 1.4+: fills the gradients it is given
        assert causal_conv1d_cuda.causal_conv1d_bwd(x, w, bias, x, None, None, None, dx, dw, db,
                                                    None, True) is None
        assert not (dx.any() or dw.any() or db.any())
        # 1.2-1.3, 1.1 (Vim), 1.0: return them
        dx, dw, db, dinit = causal_conv1d_cuda.causal_conv1d_bwd(x, w, None, x, None, None, None,
                                                                 None, False, True)
        assert dx.shape == x.shape and dw.shape == w.shape and db is None and dinit is None
        assert [t.shape for t in causal_conv1d_cuda.causal_conv1d_bwd(
            x, w, bias, x, None, None, True)] == [x.shape, w.shape, bias.shape]
        assert len(causal_conv1d_cuda.causal_conv1d_bwd(x, w, bias, x, None, True)) == 3
        with pytest.raises(TypeError, match="no causal-conv1d release takes 5 arguments"):
            causal_conv1d_cuda.causal_conv1d_bwd(x, w, bias, x, True)

        import selective_scan_cuda_oflex, selective_scan_cuda_core  # noqa: E401
        for module in (selective_scan_cuda_oflex, selective_scan_cuda_core):
            grads = module.bwd(u, u, A, B, B, torch.ones(8), None, u, None, True, 1)
            assert [None if g is None else g.shape for g in grads] == [
                u.shape, u.shape, A.shape, B.shape, B.shape, (8,), None]


def test_announced_and_loud_on_unknown_calls(no_standins):
    with pytest.warns(UserWarning, match="stand-in kernels active for selective_scan_cuda"):
        standins.install_standin_kernels(["selective_scan_cuda"])
    import selective_scan_cuda
    with pytest.raises(AttributeError, match="provides only fwd, bwd, not 'fwd_ref'"):
        selective_scan_cuda.fwd_ref
    with pytest.raises(KeyError, match="no stand-in"):
        standins.install_standin_kernels(["flash_attn_cuda"])


def test_never_replaces_a_real_extension(no_standins):
    real = types.ModuleType("selective_scan_cuda")
    sys.modules["selective_scan_cuda"] = real
    assert standins.install_standin_kernels(["selective_scan_cuda"]) == []
    assert sys.modules["selective_scan_cuda"] is real
    assert standins.remove_standin_kernels(["selective_scan_cuda"]) == []
    del sys.modules["selective_scan_cuda"]


@pytest.fixture
def triton_standins(no_standins):
    """The mamba-ssm Triton stand-ins, installed for the test; left as they were found."""
    with pytest.warns(UserWarning), standins.standin_kernels() as active:
        assert standins.TRITON_FUNCTIONS in active
        yield


def test_triton_functions_return_what_the_real_ones_allocate(triton_standins):
    from mamba_ssm.ops.triton import layer_norm, layernorm_gated, ssd_combined

    x, z = torch.randn(2, 20, 4, 8), torch.randn(2, 20, 4, 8)
    B = torch.randn(2, 20, 2, 16, dtype=torch.float16)
    out, out_x, dt, dA_cumsum, states, final = ssd_combined._mamba_chunk_scan_combined_fwd(
        x, torch.rand(2, 20, 4), -torch.rand(4), B, B, chunk_size=8, z=z)
    assert out.shape == out_x.shape == x.shape
    assert dt.shape == dA_cumsum.shape == (2, 4, 3, 8) and dt.dtype == torch.float32
    assert states.shape == (2, 3, 4, 8, 16) and states.dtype == torch.float16
    assert final.shape == (2, 4, 8, 16) and final.dtype == torch.float32
    assert ssd_combined._mamba_chunk_scan_combined_fwd(x, torch.rand(2, 20, 4), -torch.rand(4),
                                                       B, B, 8)[1] is None

    rows, w = torch.randn(6, 64), torch.ones(64)
    given = torch.full((6, 64), 3.0)
    y, mean, rstd = layernorm_gated._layer_norm_fwd(rows, w, None, 1e-5, z=rows, out=given,
                                                    group_size=16, is_rms_norm=True)
    assert y is given and not given.any() and mean is None and rstd.shape == (24,)
    assert ssd_combined._layer_norm_fwd.__wrapped__ is layernorm_gated._layer_norm_fwd.__wrapped__

    y, y1, mean, rstd, residual_out, *_ = layer_norm._layer_norm_fwd(
        rows, w, None, 1e-5, residual=rows.double(), is_rms_norm=False)
    assert y.shape == rows.shape and y1 is None and mean.shape == rstd.shape == (6,)
    assert residual_out.dtype == torch.float64
    assert layer_norm._layer_norm_fwd(rows, w, None, 1e-5)[4] is rows

    assert ssd_combined._swiglu_fwd(torch.randn(2, 5, 12)).shape == (2, 5, 6)


def test_triton_backward_functions_return_what_the_real_ones_allocate(triton_standins):
    from mamba_ssm.ops.triton import layer_norm, layernorm_gated, ssd_combined

    x, z, B = torch.randn(2, 20, 4, 8), torch.randn(2, 20, 4, 8), torch.randn(2, 20, 2, 16)
    dt, A, dz = torch.rand(2, 20, 4), -torch.rand(4), torch.full((2, 20, 4, 8), 3.0)
    dx, ddt, dA, dB, dC, dD, dz_out, ddt_bias, dinit, outz = \
        ssd_combined._mamba_chunk_scan_combined_bwd(x, x, dt, A, B, B, x, 8, D=torch.ones(4),
                                                    z=z, dt_bias=torch.zeros(4), dz=dz,
                                                    recompute_output=True)
    assert dx.shape == outz.shape == x.shape and ddt.shape == dt.shape
    assert dA.shape == ddt_bias.shape == (4,) and dA.dtype == torch.float32
    assert dB.shape == dC.shape == B.shape and dD.shape == (4,) and dinit is None
    assert dz_out is dz and not dz.any()
    assert ssd_combined._mamba_chunk_scan_combined_bwd(x, x, dt, A, B, B, x, 8)[6] is None

    rows, w = torch.randn(6, 64), torch.ones(64)
    dx, dw, db, dz = layernorm_gated._layer_norm_bwd(rows, rows, w, None, 1e-5, None, rows,
                                                     z=rows, is_rms_norm=True)
    assert dx.shape == dz.shape == rows.shape and dw.shape == w.shape and db is None
    assert ssd_combined._layer_norm_bwd.__wrapped__ is layernorm_gated._layer_norm_bwd.__wrapped__

    dx, dw, db, dresidual, dx1, dw1, db1 = layer_norm._layer_norm_bwd(
        rows, rows, w, w, 1e-5, None, rows, has_residual=True)
    assert dx.shape == rows.shape and dresidual is dx and db.shape == w.shape
    assert dx1 is None and dw1 is None and db1 is None
    assert layer_norm._layer_norm_bwd(rows, rows, w, None, 1e-5, None, rows)[3] is None
    assert layer_norm._layer_norm_bwd(rows.half(), rows, w, None, 1e-5, None, rows,
                                      recompute_output=True)[7].dtype == torch.float16

    dxy, out = ssd_combined._swiglu_bwd(torch.randn(2, 5, 12), torch.randn(2, 5, 6),
                                        recompute_output=True)
    assert dxy.shape == (2, 5, 12) and out.shape == (2, 5, 6)


def test_triton_functions_are_never_replaced_where_cuda_is(monkeypatch, no_standins):
    from mamba_ssm.ops.triton import ssd_combined

    was_replaced = standins.TRITON_FUNCTIONS in standins.remove_standin_kernels(
        [standins.TRITON_FUNCTIONS])
    real = ssd_combined._mamba_chunk_scan_combined_fwd
    try:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert standins.install_standin_kernels([standins.TRITON_FUNCTIONS]) == []
        assert ssd_combined._mamba_chunk_scan_combined_fwd is real
    finally:
        monkeypatch.undo()
        if was_replaced:
            with pytest.warns(UserWarning):
                standins.install_standin_kernels([standins.TRITON_FUNCTIONS])
