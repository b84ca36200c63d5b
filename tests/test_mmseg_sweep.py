"""Issue 21, item 3: every segmentor family mmsegmentation 1.2.2 ships counts with the get_flops
drop-in on meta (shapes only: no weights allocated, no arithmetic, so the config's own crop size
costs no more than a small one), or fails with its known one-line reason.

By default one config per folder of ``mmseg/.mim/configs`` is swept (the first in name order:
the folders differ in model, the configs in a folder mostly in schedule, data and depth);
``MMSEG_SWEEP=all`` sweeps every config. ``benchmarks/mmseg_sweep.py`` writes every config's
count at its crop size to ``benchmarks/MMSEG_SWEEP.md``.
"""
import importlib.util
import os
from pathlib import Path

import pytest
import torch

import mmseg
from fvcore_ext.engines.analysis import count_model
from fvcore_ext.mmseg.get_flops import build_segmentor
from fvcore_ext.runtime.meta import MetaDeviceError
from fvcore_ext.runtime.standins import install_mmcv_ext_standin

install_mmcv_ext_standin()
CONFIGS = Path(mmseg.__file__).parent / ".mim" / "configs"
HAS_MMDET = importlib.util.find_spec("mmdet") is not None
HAS_MMPRETRAIN = importlib.util.find_spec("mmpretrain") is not None


def _configs():
    folders = sorted(p for p in CONFIGS.iterdir() if p.is_dir() and p.name != "_base_"
                     and p.name != "__pycache__")
    found = []
    for folder in folders:
        configs = sorted(folder.glob("*.py"))
        found += configs if os.environ.get("MMSEG_SWEEP") == "all" else configs[:1]
    return found


# Configs that cannot be counted here, by folder, with a part of their one-line reason.
NEEDS = {
    "convnext": "mmpretrain",          # backbones built from mmpretrain, not installed
    "poolformer": "mmpretrain",
    "mask2former": "mmdet" if not HAS_MMDET else "meta",   # with mmdet: counts on CPU only
    "maskformer": "mmdet",
    "psanet": "psamask_forward is a compiled mmcv op",     # no pure-PyTorch PSAMask in mmcv
    "vpd": "To use VPD model",         # Stable Diffusion's ldm package (mmseg's optional deps)
}
if HAS_MMDET:
    del NEEDS["maskformer"]
if HAS_MMPRETRAIN:
    del NEEDS["convnext"], NEEDS["poolformer"]


def _crop_size(config):
    # models with fixed position embeddings (BEiT, MAE) need the size they were built for
    from mmengine import Config
    size = Config.fromfile(str(config), import_custom_modules=False).get("crop_size")
    return (3, *size) if size else (3, 512, 512)


@pytest.mark.parametrize("config", _configs(), ids=lambda p: p.parent.name + "/" + p.stem)
def test_every_mmseg_family_counts(config):
    folder = config.parent.name
    try:
        model, inputs, _ = build_segmentor(str(config), _crop_size(config), device="meta")
        with torch.no_grad():
            report = count_model(model, inputs, preset="paper")
    except MetaDeviceError as error:
        assert NEEDS.get(folder) == "meta", error.line("--device cpu")
        return
    except Exception as error:  # a config may raise anything: it must be a known reason
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
        assert folder in NEEDS and NEEDS[folder] in reason, reason
        return
    assert folder not in NEEDS, f"{folder} counts now: drop it from NEEDS"
    assert report.total_macs > 0
    assert report.unsupported_ops == {} and report.uncounted == [], \
        (report.unsupported_ops, report.uncounted)
