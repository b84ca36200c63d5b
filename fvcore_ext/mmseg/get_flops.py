"""``python -m fvcore_ext.get_flops CONFIG``: mmsegmentation's ``tools/analysis_tools/get_flops.py``
with the same arguments and defaults, counting with the pack's handles, on CPU.

It builds the model the way mmseg's script does: config and ``--cfg-options``, then the
config's ``custom_imports`` and each ``--import MODULE`` (VMamba's segmentation configs have no
``custom_imports``: its ``train.py`` registers ``MM_VSSM`` with ``import model``, so run
``--import model --standins`` from its ``segmentation`` folder), the registry,
``auxiliary_head = None``, SyncBN reverted, the data preprocessor on a random image, and
``mode='tensor'``. Segmentors whose tensor mode cannot run their head are counted on mmseg's
inference path instead (PointRend, SAN), and MaskFormer heads get their data samples.
mmseg 0.x (``forward_dummy``) is used when it is what is installed.

It prints exactly the lines mmseg 1.x's script prints (:func:`mmseg_lines`: ``Flops: 8.506G``
in mmengine's ``_format_size``, then the caution line), and after them the pack's lines
(:func:`pack_lines`): the unit (mmseg's "Flops" are MACs), the preset, the input counted, what
was not counted and the mmcv stand-in. ``python -m fvcore_ext.run`` runs an unmodified
``get_flops.py`` with the pack and prints the same.

Differences from mmseg 1.2.2's script, and why:
- it runs: the stock script passes ``input_shape`` and ``inputs`` to mmengine's
  ``get_model_complexity_info``, which raises since mmengine 0.7.3;
- SDPA, elementwise ops, every upsampling mode and Mamba kernels are counted (``--preset``);
- it counts under ``torch.no_grad()``, which the fused-attention handles make safe (UperNet-Swin-T
  at 512x2048 peaks at 5.5 GB with grad);
- it runs on CPU without compiled mmcv ops: when ``mmcv._ext`` is missing, a stand-in lets
  mmseg import, and a model that calls a compiled op fails naming it (``--no-mmcv-standin``
  turns it off);
- MaskFormer and Mask2Former heads are counted when their ops allow, instead of refused.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from ..engines.analysis import count_model
from ..runtime.meta import MetaDeviceError, build_on_meta
from .mmengine_analysis import ComplexityCall
from ..rules import PRESETS
from ..runtime.stdout import BrokenPipe, write_stdout
from ..runtime.standins import standin_hint

__all__ = ["CAUTION", "SPLIT_LINE", "build_segmentor", "format_size", "main", "mmseg_lines",
           "pack_lines"]

# mmseg 1.2.2 tools/analysis_tools/get_flops.py, byte for byte.
SPLIT_LINE = "=" * 30
COMPUTE_TYPE = "direct: randomly generate a picture"
CAUTION = ("!!!Please be cautious if you use the results in papers. You may need to check if "
           "all ops are supported and verify that the flops computation is correct.")
PRESET_MEANING = {
    "paper": "elementwise ops cost 0; matmuls, convolutions, scans, norms and resampling "
             "count, as papers report",
    "full": "every op counts, elementwise ops included",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fvcore_ext.get_flops",
                                description="Get the FLOPs of a segmentor (mmseg's get_flops, "
                                            "counted with fvcore_ext).")
    p.add_argument("config", help="train config file path")
    p.add_argument("--shape", type=int, nargs="+", default=[2048, 1024],
                   help="input image size: H W, or one value for a square (default 2048 1024)")
    p.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                   help="override settings in the config, as in mmseg's tools (key=value)")
    p.add_argument("--preset", choices=PRESETS, default="paper",
                   help="counting rules (default: paper, what papers report)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda or meta (meta: shapes only, no arithmetic and no weights "
                        "kept, the same counts; default cpu)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-mmcv-standin", action="store_true",
                   help="do not stand in for a missing mmcv._ext")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE before building the model, after the config's "
                        "custom_imports (VMamba's segmentation/train.py does 'import model' "
                        "to register its backbones; its configs have no custom_imports); "
                        "repeat for several")
    p.add_argument("--standins", action="store_true",
                   help="install the Mamba extension stand-ins (fvcore_ext.standins) before "
                        "any import, to count Vim and VMamba without their CUDA extensions")
    return p


def _input_shape(shape: Sequence[int]):
    if len(shape) == 1:
        return (3, shape[0], shape[0])
    if len(shape) == 2:
        return (3,) + tuple(shape)
    raise ValueError(f"invalid input shape {list(shape)}: give H W, or one value")


def build_segmentor(config: str, input_shape, cfg_options: Optional[Sequence[str]] = None,
                    device: str = "cpu", imports: Sequence[str] = ()):
    """Build the segmentor of ``config`` and its input as mmseg's ``get_flops.py`` does.

    ``cfg_options`` (``key=value`` strings) are merged before the config's ``custom_imports``
    run, so ``custom_imports.imports=[model]`` works; then each module of ``imports`` is
    imported (what VMamba's ``train.py`` does with ``import model``).

    Returns:
        ``(model, inputs, pad_shape)``: the model in eval mode whose forward is the tensor-mode
        forward, a 1-tuple with the preprocessed ``(1, 3, H, W)`` batch, and its padded size.

    Raises:
        FileNotFoundError: no such config file (checked first). ImportError: mmseg/mmengine
            missing, a custom or ``imports`` module fails to import, or a MaskFormer head
            without mmdet.
    """
    path = Path(config)
    if not path.is_file():    # before mmseg: a wrong path is named even where mmseg is missing
        raise FileNotFoundError(f"config file {config} does not exist"
                                + (" (it is a directory)" if path.is_dir() else ""))
    import mmseg
    from mmengine import Config, DictAction
    from mmengine.model import revert_sync_batchnorm

    cfg = Config.fromfile(str(path), import_custom_modules=False)
    cfg.work_dir = tempfile.mkdtemp()
    if cfg_options:
        options = argparse.Namespace()
        DictAction(option_strings=["--cfg-options"], dest="options")(
            argparse.ArgumentParser(), options, list(cfg_options))
        cfg.merge_from_dict(options.options)
    _import_custom_modules(cfg, path.name)
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(f"--import {module} failed: {error}") from None
    if mmseg.__version__.startswith("0."):
        return _build_mmseg0(cfg, input_shape, device)

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    init_default_scope(cfg.get("scope", "mmseg"))
    # A change-detection config (LEVIR-CD) stacks two pictures: its data preprocessor normalises
    # 6 channels, so the random input has as many channels as its mean has values.
    mean = (cfg.model.get("data_preprocessor") or {}).get("mean")
    if mean is not None and len(mean) != input_shape[0]:
        input_shape = (len(mean), *input_shape[1:])
    heads = cfg.model.get("decode_head") or {}
    # CascadeEncoderDecoder (OCRNet, PointRend) has a list of decode heads
    mask_heads = [h.get("type") for h in (heads if isinstance(heads, list) else [heads])
                  if h.get("type") in MASK_CLASSIFICATION_HEADS]
    if mask_heads:
        # mmseg's script refuses these; they count here, but mmseg builds them from mmdet.
        try:
            import mmdet.models  # noqa: F401
        except ImportError as error:
            raise ImportError(f"{mask_heads[0]} is built from mmdet's heads: install mmdet "
                              f"(mmdet>=3) to count this model ({error})") from None
    if str(device) == "meta":     # weights never allocated (CPU first if __init__ reads data)
        # a fresh copy per try: a segmentor's __init__ may edit its config (EncoderDecoder
        # moves `pretrained` into the backbone's) before the meta try fails
        model = build_on_meta(lambda: MODELS.build(copy.deepcopy(cfg.model)))
    else:
        model = MODELS.build(cfg.model)
    _drop_auxiliary_head(model)
    model = revert_sync_batchnorm(model).to(device)
    meta = {"ori_shape": input_shape[-2:], "pad_shape": input_shape[-2:],
            "img_shape": input_shape[-2:]}
    data = model.data_preprocessor({"inputs": [torch.rand(input_shape, device=device)],
                                    "data_samples": [SegDataSample(metainfo=meta)]})
    model.eval()
    inputs = data["inputs"]
    if mask_heads:
        for sample in data["data_samples"]:    # what mmdet's heads read for the padded size
            sample.set_metainfo({"batch_input_shape": tuple(inputs.shape[-2:])})
        _forward_with_data_samples(model, data["data_samples"])
    elif any(h.get("type") in REFINING_HEADS
             for h in (heads if isinstance(heads, list) else [heads])):
        _forward_as_inference(model, [s.metainfo for s in data["data_samples"]])
    return model, (inputs,), tuple(inputs.shape[-2:])


# Their forward takes the batch's data samples (it reads each image's size for the mask
# queries), which mmseg's tensor-mode forward does not pass.
MASK_CLASSIFICATION_HEADS = ("MaskFormerHead", "Mask2FormerHead")
# PointRend's PointHead refines the coarse map at sampled points at test time; its forward takes
# point features, and mmseg 1.2.2's CascadeEncoderDecoder._forward calls it with the feature
# maps instead ("TODO support PointRend tensor mode"), which raises.
# SAN's SideAdapterCLIPHead likewise: its forward wants the deep-supervision indices, which only
# its predict passes.
REFINING_HEADS = ("PointHead", "SideAdapterCLIPHead")


def _forward_with_data_samples(model, data_samples) -> None:
    # The tensor-mode forward (EncoderDecoder._forward: extract_feat, then the decode head's
    # forward), with the data samples the MaskFormer heads need; bound on the instance so the
    # trace sees a one-tensor forward.
    def forward(inputs):
        return model.decode_head.forward(model.extract_feat(inputs), data_samples)

    model.forward = forward


def _forward_as_inference(model, batch_img_metas) -> None:
    # What mmseg runs at test time in "whole" mode: encode_decode, whose last head predicts
    # with the test_cfg (PointRend: subdivision_steps of upsample + refine at
    # subdivision_num_points points), then resizes to the image. SAN's CLIP text encoder embeds
    # every class name under every prompt template once and caches the result
    # (cache_feature=True, its default): filled here first, so the count is per image, as
    # mmseg runs every image after the first.
    text_encoder = getattr(model, "text_encoder", None)
    if getattr(text_encoder, "cache_feature", False):
        with torch.no_grad():
            text_encoder()

    def forward(inputs):
        return model.encode_decode(inputs, batch_img_metas)

    model.forward = forward


def _import_custom_modules(cfg, config_name: str) -> None:
    # What Config.fromfile does for custom_imports, with an error that says which module failed
    # and why.
    custom = cfg.get("custom_imports") or {}
    modules = custom.get("imports", [])
    for module in [modules] if isinstance(modules, str) else modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            if custom.get("allow_failed_imports", False):
                continue
            hint = (" (MaskFormer and Mask2Former heads come from mmdet: install mmdet)"
                    if module.startswith("mmdet") else "")
            raise ImportError(f"{config_name} imports {module}, which failed: {error}{hint}"
                              ) from None


def _drop_auxiliary_head(model) -> None:
    # mmseg's script sets it to None. Deleting the submodule first leaves a plain None
    # attribute: EncoderDecoder.with_auxiliary_head is False and no None child is left for
    # mmengine's printers, which cannot handle one.
    if getattr(model, "auxiliary_head", None) is not None:
        del model.auxiliary_head
        model.auxiliary_head = None


def _build_mmseg0(cfg, input_shape, device):
    # mmseg 0.x: build_segmentor, then count forward_dummy on a (1, C, H, W) tensor.
    from mmcv.cnn.utils import revert_sync_batchnorm
    from mmseg.models import build_segmentor as build

    model = build(cfg.model, train_cfg=cfg.get("train_cfg"), test_cfg=cfg.get("test_cfg"))
    _drop_auxiliary_head(model)
    model = revert_sync_batchnorm(model).to(device).eval()
    if not hasattr(model, "forward_dummy"):
        raise NotImplementedError(f"{type(model).__name__} has no forward_dummy to count")
    model.forward = model.forward_dummy
    return model, (torch.randn(1, *input_shape, device=device),), tuple(input_shape[-2:])


def format_size(count: int) -> str:
    """``count`` as mmseg's script prints it: mmengine 0.10's
    ``mmengine.analysis.print_helper._format_size`` with its defaults (3 decimals, trailing
    zeros dropped, a suffix K/M/G/T/P above 1e2/1e5/1e8/1e11/1e14): ``8505589760`` →
    ``"8.506G"``. Copied rather than imported so mmseg 0.x installs without mmengine print
    the same; ``tests/test_get_flops.py`` checks it against mmengine's."""
    def fixed(x: float) -> str:
        return f"{x:.3f}".rstrip("0").rstrip(".")

    for limit, scale, suffix in ((1e14, 1e15, "P"), (1e11, 1e12, "T"), (1e8, 1e9, "G"),
                                 (1e5, 1e6, "M"), (1e2, 1e3, "K")):
        if abs(count) > limit:
            return fixed(count / scale) + suffix
    return str(count)


def mmseg_lines(input_shape: Sequence[int], macs: int, params: int) -> List[str]:
    """The lines mmseg 1.x's ``tools/analysis_tools/get_flops.py`` prints, in its order.

    Args:
        input_shape: ``(3, H, W)`` as the script builds it from ``--shape``.
        macs: total MACs (mmengine's and mmseg's "flops").
        params: number of parameters.

    Returns:
        The split line, ``Compute type: ...``, ``Input shape: (H, W)``, ``Flops: 8.506G``,
        ``Params: 3.754M``, the split line and the caution line.

    mmseg 1.2.2 prints ``input_shape[-2:]`` as the input shape even when the data preprocessor
    pads the image (the padded tensor is what it counts), and never its "Use size divisor"
    line: it sets ``pad_shape`` to ``ori_shape``. :func:`pack_lines` names the shape counted.
    """
    return [SPLIT_LINE, f"Compute type: {COMPUTE_TYPE}",
            f"Input shape: {tuple(input_shape[-2:])}",
            f"Flops: {format_size(macs)}", f"Params: {format_size(params)}", SPLIT_LINE,
            CAUTION]


def _batched(input_shape) -> List[tuple]:
    # The shapes mmengine makes from input_shape: (C, H, W), or a tuple of such shapes.
    if all(isinstance(d, int) for d in input_shape):
        return [(1, *input_shape)]
    return [(1, *shape) for shape in input_shape]


def pack_lines(call: ComplexityCall, mmcv_standin: bool = False) -> List[str]:
    """The pack's lines printed after mmseg's, for one count.

    Returns lines saying: the unit (mmseg's "Flops" are MACs; FLOPs = 2 x MACs), exactly; the
    preset; the shape of each input counted (and ``input_shape`` when it differs, as when a
    data preprocessor pads); what was not counted (ops with no rule, ops whose rule could not
    read them), each counted as 0; and, if ``mmcv_standin``, that the mmcv._ext stand-in was
    active (a model that called a compiled op would have failed naming it).
    """
    shapes = ", ".join(str(s) if s is not None else "(not a tensor)"
                       for s in call.counted_shapes)
    if call.input_shape is not None and _batched(call.input_shape) != call.counted_shapes:
        shapes += f" (the inputs given; input_shape was {tuple(call.input_shape)})"
    not_counted = [f"{op} x{n} (no rule)" for op, n in call.unsupported_ops.items()]
    not_counted += [f"{op.op} x{op.calls} ({op.reason})" for op in call.uncounted]
    lines = [
        f'Unit: "Flops" (mmengine\'s and mmseg\'s) are MACs: {call.macs:,} MACs = '
        f"{2 * call.macs:,} FLOPs",
        f"Preset: {call.preset} ({PRESET_MEANING[call.preset]})",
        f"Counted on: {shapes}",
        "Not counted: " + (", ".join(not_counted) + ", each counted as 0" if not_counted else
                           "nothing, every op in the trace has a rule"),
    ]
    if mmcv_standin:
        lines.append("mmcv._ext: stand-in (mmcv has no compiled ops); the model called none "
                     "of them")
    return lines


def _error(line: str, fmt: str) -> int:
    # One line on stderr; with --format json, stdout gets the error too, as JSON.
    print(f"error: {line}", file=sys.stderr)
    if fmt == "json":
        print(json.dumps({"error": line, "status": 2}))
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns 0, or 2 with a one-line reason on stderr on bad input, a model
    that cannot be built or counted (with ``--format json``, ``{"error": ..., "status": 2}``
    on stdout too), or stdout closed before the result was written (``| head``)."""
    args = _parser().parse_args(argv)
    try:
        input_shape = _input_shape(args.shape)
        # mmseg's deprecation notices and the tracer's warnings would bury the block; what the
        # count left out is printed below it instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            standin = False
            if not args.no_mmcv_standin:
                from ..runtime.standins import install_mmcv_ext_standin
                standin = install_mmcv_ext_standin()
            if args.standins:
                from ..runtime.standins import install_standin_kernels
                install_standin_kernels()
            model, inputs, pad_shape = build_segmentor(args.config, input_shape,
                                                       args.cfg_options, args.device,
                                                       args.imports)
            report = count_model(model, inputs, preset=args.preset)
    except MetaDeviceError as error:   # the model reads tensor data: say so, suggest CPU
        return _error(error.line("--device cpu"), args.format)
    except Exception as error:  # a config or a model may raise anything
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return _error(f"{type(error).__name__}: {text}{standin_hint(error)}", args.format)
    if args.format == "json":
        text = json.dumps(dict(report.to_dict(), config=args.config, pad_shape=list(pad_shape),
                               mmcv_standin=standin), indent=2)
    else:
        call = ComplexityCall(preset=report.preset, input_shape=input_shape,
                              counted_shapes=[shape for _, shape in report.inputs],
                              macs=report.total_macs, params=report.params,
                              unsupported_ops=report.unsupported_ops, uncounted=report.uncounted)
        text = "\n".join(mmseg_lines(input_shape, report.total_macs, report.params)
                         + pack_lines(call, standin))
    try:
        write_stdout(text)
    except BrokenPipe as error:   # the reader left (`| head`): one line, as the pack's CLI
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
