"""Issue 21 (and 17, item 2): Vim's and VMamba's own code, run as their users run it, counted
on CPU and on meta with the stand-ins.

The repositories' files are not copied here; tests/repo_layouts.py writes, into a temporary
folder, modules laid out and failing as theirs do (VMamba's ``csm_triton.cross_scan_fn``
entering ``torch.cuda.device(x.device)``, its own ``mamba2/ssd_combined.py`` launching Triton,
Vim's mamba-1p1p1 ``mamba_ssm/ops/triton/layernorm.py`` imported after the stand-ins are
installed). ``VMAMBA_ROOT`` pointing at a VMamba checkout adds a count of every model its
``classification/models/vmamba.py`` defines (skipped otherwise).
"""
import importlib
import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

from fvcore_ext import count_model
from fvcore_ext.runtime import standins
from fvcore_ext.rules.ssd import ssd_chunk_scan_macs
from tests.repo_layouts import write_vim_like, write_vmamba_like


@pytest.fixture
def hooked():
    """The stand-ins installed (import hook included), left as the session had them."""
    hook_before = standins._IMPORT_HOOK in sys.meta_path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        standins.install_standin_kernels()
    yield
    if not hook_before:
        standins.remove_standin_kernels([standins.TRITON_FUNCTIONS])


def _own_modules(root: Path, names) -> list:
    """Of ``names`` (modules imported during a test), those of the test's own packages: a
    top-level package or module written into ``root``, or a module whose file lives there.
    torch's and every other library's lazily imported modules (``torch._dynamo``,
    ``torch._inductor.test_operators``) stay: deleting them would make the next import run
    their registrations again (a TORCH_LIBRARY namespace registered twice)."""
    tops = {p.stem if p.suffix == ".py" else p.name for p in root.iterdir()
            if p.suffix == ".py" or p.is_dir()} if root.is_dir() else set()
    own = []
    for name in names:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if name.split(".")[0] in tops or os.path.abspath(path).startswith(str(root) + os.sep):
            own.append(name)
    return own


@pytest.fixture
def fresh_path(monkeypatch, tmp_path):
    """``tmp_path`` first on ``sys.path``; the modules imported from it (the test's own
    packages) are taken out of ``sys.modules`` afterwards, and nothing else."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for name in _own_modules(tmp_path, set(sys.modules) - before):
        del sys.modules[name]


def test_fresh_path_removes_only_the_tests_own_modules(tmp_path):
    (tmp_path / "own_pkg").mkdir()
    (tmp_path / "own_pkg" / "__init__.py").write_text("")
    (tmp_path / "own_mod.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        import own_mod  # noqa: F401
        import own_pkg  # noqa: F401
        names = ["own_mod", "own_pkg", "torch._dynamo", "json.decoder"]
        assert sorted(_own_modules(tmp_path, names)) == ["own_mod", "own_pkg"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("own_mod", None)
        sys.modules.pop("own_pkg", None)


@pytest.fixture
def isolated_imports(fresh_path):
    """:func:`fresh_path`, with the session's ``mamba_ssm`` modules out of ``sys.modules`` for
    the test (a Vim-like ``mamba_ssm`` is imported from ``tmp_path``), put back afterwards.
    Tests using it must not take the stand-ins out: the session's modules would not be patched
    again."""
    saved = {n: sys.modules.pop(n) for n in list(sys.modules)
             if n == "mamba_ssm" or n.startswith("mamba_ssm.")}
    yield fresh_path
    for name in [n for n in sys.modules if n == "mamba_ssm" or n.startswith("mamba_ssm.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_vmamba_cross_scan_and_its_own_mamba2_count_on_cpu_and_meta(hooked, fresh_path):
    write_vmamba_like(fresh_path)
    from vmamba_like.models.vmamba import tiny_model       # imported after the install
    from vmamba_like.models import csm_triton
    from vmamba_like.models.mamba2 import ssd_combined
    assert getattr(csm_triton.cross_scan_fn, "__fvcore_ext_standin__", False)
    assert getattr(ssd_combined._mamba_chunk_scan_combined_fwd, "__fvcore_ext_standin__", False)

    x = torch.randn(1, 8, 4, 4)
    ssd = ssd_chunk_scan_macs((1, 16, 2, 4), (1, 16, 1, 4), 8, has_D=True, has_z=False,
                              has_dt_bias=False, dt_softplus=False)
    linear = 16 * 8 * 8
    merge = 3 * 8 * 16                       # CrossMergeF sums 4 directions: 3 adds per output
    a = 2 + 2                                # -exp(A_log) over the 2 heads: exp, neg
    for preset in ("paper", "full"):
        expected = linear + ssd.macs(preset) + (merge + a if preset == "full" else 0)
        for device in ("cpu", "meta"):
            report = count_model(tiny_model(), [x], preset=preset, device=device)
            assert report.total_macs == expected, (preset, device)
            assert report.unsupported_ops == {} and report.uncounted == []
    # the torch path of VMamba's own code still runs on CPU tensors outside the count
    assert csm_triton.cross_scan_fn(x).shape == (1, 4, 8, 16)


def test_vmamba_module_imported_before_the_install_is_patched_too(fresh_path):
    write_vmamba_like(fresh_path)
    hook_before = standins._IMPORT_HOOK in sys.meta_path
    standins.remove_standin_kernels([standins.TRITON_FUNCTIONS])
    try:
        from vmamba_like.models import vmamba
        with pytest.raises(ValueError, match="Expected a cuda device"):
            vmamba.cross_scan_fn(torch.randn(1, 8, 4, 4))
        with pytest.warns(UserWarning):
            standins.install_standin_kernels([standins.TRITON_FUNCTIONS])
        # vmamba bound cross_scan_fn with `from .csm_triton import`: replaced there as well
        assert vmamba.cross_scan_fn(torch.randn(1, 8, 4, 4)).shape == (1, 4, 8, 16)
        standins.remove_standin_kernels([standins.TRITON_FUNCTIONS])
        assert not getattr(vmamba.cross_scan_fn, "__fvcore_ext_standin__", False)
    finally:
        if hook_before:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                standins.install_standin_kernels()


def test_vim_layernorm_imported_after_the_install_is_patched(hooked, isolated_imports):
    # issue 17, item 2: install first, then put Vim's mamba-1p1p1 on sys.path and import it
    write_vim_like(isolated_imports)
    from mamba_ssm.ops.triton import layernorm
    assert getattr(layernorm._layer_norm_fwd, "__fvcore_ext_standin__", False)
    rows = torch.randn(6, 16)
    y, mean, rstd, residual_out = layernorm._layer_norm_fwd(rows, torch.ones(16), None, 1e-5,
                                                            residual=rows, is_rms_norm=True)
    assert y.shape == rows.shape and mean is None and rstd.shape == (6,)
    # the Function that calls it, bound at import, reaches the stand-in too
    assert layernorm.rms_norm_fn(rows, torch.ones(16)).shape == rows.shape


def test_missing_triton_is_named_not_the_stand_ins(hooked, fresh_path, monkeypatch):
    write_vmamba_like(fresh_path)
    monkeypatch.setitem(sys.modules, "triton", None)          # as if Triton were not installed
    (fresh_path / "vmamba_like" / "models" / "csm_triton.py").write_text(
        "try:\n    import triton\nexcept ImportError:\n    pass\n\n"
        "@triton.jit\ndef kernel():\n    pass\n")
    with pytest.raises(ImportError, match="Triton must be installed, even without a GPU"):
        importlib.import_module("vmamba_like.models.csm_triton")


def test_vim_mamba_1x_under_transformers_5_is_named(hooked, isolated_imports):
    write_vim_like(isolated_imports, generation=True)
    with pytest.raises(ImportError, match="transformers 5 removed") as raised:
        importlib.import_module("mamba_ssm.utils.generation")
    assert "stand-ins are not the cause" in str(raised.value)
    assert "install the extension stand-ins first" not in str(raised.value)


def test_install_imports_nothing_and_never_fails(monkeypatch):
    # install used to import mamba_ssm's Triton modules and blame the stand-ins when they failed
    monkeypatch.setitem(sys.modules, "triton", None)
    for name in [n for n in sys.modules if n == "mamba_ssm" or n.startswith("mamba_ssm.")]:
        monkeypatch.delitem(sys.modules, name)
    hook_before = standins._IMPORT_HOOK in sys.meta_path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert standins.TRITON_FUNCTIONS in standins.install_standin_kernels()
        assert "mamba_ssm" not in sys.modules
    finally:
        if not hook_before:
            standins.remove_standin_kernels([standins.TRITON_FUNCTIONS])


# ---------------------------------------------------------------- a real VMamba checkout
VMAMBA_ROOT = os.environ.get("VMAMBA_ROOT")
VMAMBA_MODELS = ["vanilla_vmamba_tiny", "vanilla_vmamba_small", "vanilla_vmamba_base",
                 "vmamba_tiny_s2l5", "vmamba_small_s2l15", "vmamba_base_s2l15",
                 "vmamba_tiny_s1l8", "vmamba_small_s1l20", "vmamba_base_s1l20",
                 "vmamba_tiny_m2", "vmamba_small_m2", "vmamba_base_m2"]
# VMamba's published GFLOPs at 224x224, the paper preset's numbers, on the models its README
# names: VMamba-T[s1l8] 4.9G, VMamba-S[s2l15] 8.7G, VMamba-B[s2l15] 15.4G (the s1l20 models
# count 8.61 / 15.22 G and are not in the README's table)
VMAMBA_PUBLISHED_G = {"vmamba_tiny_s1l8": 4.9, "vmamba_small_s2l15": 8.7,
                      "vmamba_base_s2l15": 15.4}


@pytest.mark.skipif(not VMAMBA_ROOT, reason="set VMAMBA_ROOT to a VMamba checkout")
def test_the_vmamba_model_list_is_the_checkouts(hooked, monkeypatch):
    pytest.importorskip("timm", reason="VMamba's models import timm")
    monkeypatch.syspath_prepend(str(Path(VMAMBA_ROOT) / "classification"))
    vmamba = importlib.import_module("models.vmamba")
    defined = sorted(n for n, f in vars(vmamba).items() if callable(f)
                     and n.startswith(("vmamba_", "vanilla_vmamba_")))
    assert defined == sorted(VMAMBA_MODELS)


@pytest.mark.skipif(not VMAMBA_ROOT, reason="set VMAMBA_ROOT to a VMamba checkout")
@pytest.mark.parametrize("name", VMAMBA_MODELS)
def test_every_vmamba_model_counts_on_meta(hooked, monkeypatch, name):
    pytest.importorskip("timm", reason="VMamba's models import timm")
    monkeypatch.syspath_prepend(str(Path(VMAMBA_ROOT) / "classification"))
    vmamba = importlib.import_module("models.vmamba")
    report = count_model(getattr(vmamba, name)(), [torch.randn(1, 3, 224, 224)],
                         preset="paper", device="meta")
    assert report.unsupported_ops == {} and report.uncounted == []
    if name in VMAMBA_PUBLISHED_G:
        assert round(report.total_macs / 1e9, 1) == VMAMBA_PUBLISHED_G[name]


def test_cli_names_standins_when_vmamba_code_wants_cuda(capsys, fresh_path):
    from fvcore_ext.cli.main import main
    write_vmamba_like(fresh_path)
    hook_before = standins._IMPORT_HOOK in sys.meta_path
    standins.remove_standin_kernels([standins.TRITON_FUNCTIONS])
    try:
        argv = ["vmamba_like.models.vmamba:tiny_model", "--input-shape", "1", "8", "4", "4"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Expected a cuda device" in err and "add --standins" in err
        assert main(argv + ["--standins", "--preset", "paper"]) == 0
        assert "PythonOp.MambaChunkScanCombinedFn" in capsys.readouterr().out
    finally:
        if not hook_before:
            standins.remove_standin_kernels([standins.TRITON_FUNCTIONS])
