"""Count any Hugging Face ``transformers`` model from its config: ``python -m fvcore_ext
hf:SPEC``, or :func:`count_hf` from Python.

``SPEC`` is a local ``config.json`` (or a directory holding one; weights are never read), a Hub
model id (resolved with transformers' config loader: the local cache when offline), or a
``model_type`` of transformers' registry (``llama``, ``qwen2_moe``, ``whisper``: its default
config). ``--set key=value`` overrides config entries (dotted for sub-configs:
``text_config.num_hidden_layers=2``); ``--head`` picks the model class (the base model by
default). The model is built and counted on the meta device (shapes only, no weights) unless
``device="cpu"``. Inputs come from :mod:`fvcore_ext.hf.inputs`.

Counts are MACs (FLOPs = 2 x MACs). A prefill counts the forward pass over ``seq_len`` tokens;
a decode step counts one token's forward pass with a KV cache of ``seq_len`` tokens. The JIT
tracer cannot take a transformers ``Cache``, so the decode step is traced through a wrapper
whose inputs are the cache's tensors and which rebuilds the cache inside its forward ("JIT
engine, cache wrapped").
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..engines.analysis import CountReport, count_model
from .inputs import InputSynthesisError, make_inputs, no_data_checks
from ..ops.diagnostics import UncountableOpError
from ..runtime.meta import MetaDeviceError, build_on_meta
from ..ops import OP_TABLE
from ..rules import check_preset

__all__ = ["CachedDecodeStep", "DecodeCost", "HEADS", "HFModel", "HFSpecError", "SweepRow", "count_decode",
           "count_hf", "families", "input_names", "load_hf", "network_allowed", "parse_overrides",
           "pass_families",
           "resolve_config", "sweep_hf"]

DEFAULT_SEQ_LEN = 128
DEFAULT_NEW_TOKENS = 128
DECODE_NOTE = "JIT engine, cache wrapped"
CACHE_NAMES = ("cache", "past_key_values", "cache_params")

# --head keyword -> transformers' auto-mapping of model type -> class name
HEADS = {
    "base": "MODEL_MAPPING_NAMES",
    "causal-lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "seq2seq-lm": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "masked-lm": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "sequence-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "token-classification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "question-answering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "semantic-segmentation": "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
    "object-detection": "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
    "depth-estimation": "MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES",
    "image-text-to-text": "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    "multimodal-lm": "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES",
    "speech-seq2seq": "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "ctc": "MODEL_FOR_CTC_MAPPING_NAMES",
    "audio-classification": "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES",
}


class HFSpecError(ValueError):
    """A spec, override, head or input that cannot be resolved; the message is one line."""


@dataclass
class HFModel:
    """A model built from a spec by :func:`load_hf`: ``config`` (the transformers config after
    overrides), ``model`` (in eval mode, on ``device``), ``model_type``, ``source`` (where the
    config came from, in words) and ``spec`` (as given)."""

    spec: str
    config: Any
    model: nn.Module
    model_type: str
    source: str
    device: str
    overrides: Dict[str, Any] = field(default_factory=dict)
    dtype: Optional[torch.dtype] = None

    @property
    def title(self) -> str:
        """``hf:SPEC (ClassName)`` for report headings."""
        return f"hf:{self.spec} ({type(self.model).__name__})"


@dataclass
class DecodeCost:
    """What :func:`count_decode` measures, in MACs: ``step`` is one decode step's report at a
    cache of ``cache_len`` tokens; ``per_cache_token`` the extra MACs each further cache token
    adds to a step; ``generate_macs`` the cost of ``new_tokens`` steps after the prefill
    (cache lengths ``cache_len`` ... ``cache_len + new_tokens - 1``); ``exact`` whether that sum
    is exact (the step cost was checked to be affine in the cache length at three lengths)
    or interpolated; ``how`` says which engine traced the step."""

    cache_len: int
    step: CountReport
    per_cache_token: int
    new_tokens: int
    generate_macs: int
    exact: bool
    how: str = DECODE_NOTE


@dataclass
class SweepRow:
    """One sequence length of :func:`sweep_hf`: the prefill report (and its MACs by family) and,
    with ``decode=True``, the :class:`DecodeCost`. With ``backward=True`` the report is a
    training step's (``training`` is True): ``prefill.forward_macs`` + ``prefill.backward_macs``
    = ``prefill.total_macs``, and ``by_family`` covers both passes
    (:func:`pass_families` splits it)."""

    seq_len: int
    prefill: CountReport
    by_family: Dict[str, int]
    decode: Optional[DecodeCost] = None
    seconds: float = 0.0
    training: bool = False


# ---------------------------------------------------------------- specs and configs

def parse_overrides(items: Optional[Sequence[str]]) -> Dict[str, Any]:
    """``["num_hidden_layers=2", "text_config.vocab_size=1000", "rope_scaling=null"]`` → a dict
    of dotted keys to values. Values are read as JSON (ints, floats, ``true``, ``null``, lists,
    objects), else kept as strings. ``HFSpecError`` on an item without ``=``."""
    out: Dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise HFSpecError(f"bad --set {item!r}: expected key=value")
        try:
            value = json.loads(text)
        except ValueError:
            value = {"True": True, "False": False, "None": None}.get(text, text)
        out[key.strip()] = value
    return out


@contextlib.contextmanager
def _logging_kept():
    # Importing transformers (and huggingface_hub) sets their loggers' levels the first time
    # (to WARNING, or $TRANSFORMERS_VERBOSITY): a level the user set before is put back.
    loggers = [logging.getLogger(name) for name in ("transformers", "huggingface_hub")]
    levels = [logger.level for logger in loggers]
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _config_classes():
    with _logging_kept():
        from transformers import CONFIG_MAPPING
    return CONFIG_MAPPING


_JSON_KINDS = {list: "a JSON list", type(None): "JSON null", str: "a JSON string",
               int: "a JSON number", float: "a JSON number", bool: "a JSON boolean"}


def network_allowed(online: bool = False) -> bool:
    """Whether a Hub id not in the local cache may be downloaded: ``online``, or the
    environment says so explicitly (``HF_HUB_OFFLINE=0``). Otherwise Hub ids resolve from the
    local cache only, so that a machine with no network fails at once, not after huggingface_hub's
    retries."""
    if online:
        return True
    value = os.environ.get("HF_HUB_OFFLINE")
    return value is not None and value.strip().lower() in ("0", "false", "no", "off")


@contextlib.contextmanager
def _hub_quiet():
    # huggingface_hub's and transformers' warnings while a Hub id is tried: one line of ours
    # says what went wrong. The loggers' levels are put back.
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR + 10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _raw_config(spec: str, online: bool = False) -> Tuple[Dict[str, Any], str]:
    """The config dict a spec names, and where it came from."""
    with _logging_kept():
        from transformers import PretrainedConfig

    if os.path.isdir(spec):
        path = os.path.join(spec, "config.json")
        if not os.path.isfile(path):
            raise HFSpecError(f"directory {spec!r} holds no config.json")
        spec = path
    if os.path.isfile(spec):
        try:
            with open(spec) as f:
                raw = json.load(f)
        except (OSError, ValueError) as error:
            raise HFSpecError(f"cannot read {spec!r}: {error}") from None
        if not isinstance(raw, dict):
            raise HFSpecError(f"{spec!r} holds {_JSON_KINDS.get(type(raw), 'JSON')}, not a "
                              f"config: a config.json is a JSON object with a model_type")
        return raw, f"local config {spec}"
    if spec in _config_classes():
        return {"model_type": spec}, f"default config of model type {spec!r}"
    allowed = network_allowed(online)
    try:
        with _hub_quiet():
            raw, _ = PretrainedConfig.get_config_dict(spec, local_files_only=not allowed)
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        how = ("" if allowed else "; pass a local config.json (hf:path/to/config.json or a "
               "directory holding one), or --online (HF_HUB_OFFLINE=0) to download it")
        raise HFSpecError(
            f"{spec!r} is not a config.json, a directory holding one, a model type of "
            f"transformers or a Hub id {'on the Hub' if allowed else 'in the local cache'}"
            f"{how} ({type(error).__name__}: {text[:200]})") from None
    if not isinstance(raw, dict):
        raise HFSpecError(f"the Hub config of {spec!r} is not a JSON object")
    return raw, f"Hub config {spec}"


def _fit_layer_lists(sub: Dict[str, Any], key: str, value: Any) -> None:
    # A shorter model keeps its pattern of layer kinds: a per-layer list ("layer_types",
    # Qwen3.5's linear/full attention) is cycled to the new layer count.
    if key not in ("num_hidden_layers", "num_layers", "n_layer", "n_layers") or \
            not isinstance(value, int):
        return
    for name in ("layer_types", "layers_block_type", "block_types"):
        kinds = sub.get(name)
        if isinstance(kinds, list) and kinds and len(kinds) != value:
            sub[name] = [kinds[i % len(kinds)] for i in range(value)]


def _build_config(raw: Dict[str, Any]):
    model_type = raw.get("model_type")
    if not model_type:
        raise HFSpecError("the config has no model_type")
    if not isinstance(model_type, str):
        raise HFSpecError(f"the config's model_type is {json.dumps(model_type)}, not a "
                          f"string such as \"llama\"")
    classes = _config_classes()
    if model_type not in classes:
        raise HFSpecError(f"model type {model_type!r} is not in this transformers' registry "
                          f"(transformers too old, or a custom model)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return classes[model_type].from_dict(copy.deepcopy(raw))
        except Exception as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise HFSpecError(f"cannot build the {model_type!r} config: "
                              f"{type(error).__name__}: {text}") from None


def resolve_config(spec: str, overrides: Optional[Dict[str, Any]] = None,
                   online: bool = False):
    """The transformers config a spec names, with ``overrides`` applied.

    Args:
        spec: a ``config.json`` path, a directory holding one, a ``model_type`` of transformers'
            registry (its default config) or a Hub id: from the local cache only, unless
            ``online`` or ``HF_HUB_OFFLINE=0`` (:func:`network_allowed`).
        overrides: dotted key → value (:func:`parse_overrides`). A sub-config key
            (``text_config.num_hidden_layers``) starts from the config's own sub-config. A new
            layer count cycles per-layer lists (``layer_types``) to the new length.

    Returns:
        ``(config, source)``: the config object and where it came from, in words.

        online: let a Hub id not in the cache be downloaded (its config only).

    Raises:
        HFSpecError: unknown spec, a file that is not a JSON object, no ``model_type`` (or
            not a string), a Hub id not in the cache with no network allowed, a key that is not
            in the config, or a config class that rejects the values.
    """
    raw, source = _raw_config(spec, online)
    overrides = dict(overrides or {})
    if overrides:
        built = _build_config(raw)
        for key, value in overrides.items():
            parts = key.split(".")
            target, obj = raw, built
            for part in parts[:-1]:
                obj = getattr(obj, part, None) if obj is not None else None
                if not isinstance(target.get(part), dict):
                    if obj is None or not hasattr(obj, "to_dict"):
                        raise HFSpecError(f"--set {key}: the config has no sub-config {part!r}")
                    target[part] = obj.to_dict()
                target = target[part]
            leaf = parts[-1]
            if leaf not in target and (obj is None or not hasattr(obj, leaf)):
                raise HFSpecError(f"--set {key}: the {'sub-' if len(parts) > 1 else ''}config "
                                  f"has no attribute {leaf!r}")
            target[leaf] = value
            _fit_layer_lists(target, leaf, value)
    return _build_config(raw), source


def _class_for(config, head: Optional[str]):
    import transformers
    from transformers.models.auto import modeling_auto

    head = head or "base"
    if head not in HEADS:
        cls = getattr(transformers, head, None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls
        raise HFSpecError(f"unknown head {head!r}: expected one of {', '.join(HEADS)} or a "
                          f"transformers model class name")
    mapping = getattr(modeling_auto, HEADS[head], {})
    names = mapping.get(config.model_type)
    if not names:
        have = [h for h, m in HEADS.items()
                if getattr(modeling_auto, m, {}).get(config.model_type)]
        raise HFSpecError(f"model type {config.model_type!r} has no {head} class"
                          + (f"; it has: {', '.join(have)}" if have else ""))
    for name in [names] if isinstance(names, str) else list(names):
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    raise HFSpecError(f"transformers has no class {names!r}")


def load_hf(spec: Union[str, HFModel], overrides: Optional[Dict[str, Any]] = None,
            head: Optional[str] = None, device: str = "meta",
            online: bool = False, dtype: Optional[torch.dtype] = None) -> HFModel:
    """Build the model a spec names (:func:`resolve_config`), in eval mode.

    Args:
        spec: see :func:`resolve_config`; an :class:`HFModel` is returned as it is.
        overrides: dotted config key → value.
        head: ``None``/``"base"`` (the base model), a key of :data:`HEADS` (``"causal-lm"``,
            ``"seq2seq-lm"``, ``"image-classification"``, ...) or a transformers class name
            (``"SegformerForSemanticSegmentation"``).
        device: ``"meta"`` (the default: built under ``torch.device("meta")``, no weights
            allocated) or ``"cpu"`` (random weights from seed 0, drawn on a forked generator:
            the caller's RNG state is unchanged).
        online: a Hub id may be downloaded (:func:`resolve_config`).
        dtype: build the model's floating parameters and buffers in this dtype
            (``torch.bfloat16``: the bytes and peaks a user runs with); its floating inputs
            follow. ``None``: as the config builds it (float32).

    Raises:
        HFSpecError: the spec, an override or the head cannot be resolved, or the class
            cannot be built from the config (one line).
    """
    if isinstance(spec, HFModel):
        return spec
    if device not in ("meta", "cpu"):
        raise HFSpecError(f"unknown device {device!r}: expected meta or cpu")
    config, source = resolve_config(spec, overrides, online)
    cls = _class_for(config, head)
    try:
        # random weights from seed 0, on a forked generator: the caller's RNG is untouched
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            model = build_on_meta(lambda: cls(config)) if device == "meta" else cls(config)
            if dtype is not None:
                model = model.to(dtype)
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise HFSpecError(f"cannot build {cls.__name__} from the config: "
                          f"{type(error).__name__}: {text}") from None
    return HFModel(spec=spec, config=config, model=model.eval(), model_type=config.model_type,
                   source=source, device=device, overrides=dict(overrides or {}), dtype=dtype)


# ---------------------------------------------------------------- counting

def _inputs(hf: HFModel, seq_len: int, batch: int, image_size, decoder_seq_len=None,
            text_only: bool = False):
    # A text-and-vision model (CLIP, BLIP, OWL-ViT) is counted with both towers.
    params = inspect.signature(hf.model.forward).parameters
    pixels = "pixel_values" in params and not text_only and (
        getattr(hf.config, "vision_config", None) is not None
        or getattr(hf.config, "image_size", None) is not None    # ViLT: one tower, two inputs
        or params["pixel_values"].default is inspect.Parameter.empty)
    try:
        tensors, names, rest = make_inputs(
            hf.model, hf.config, hf.model_type, pixels=pixels, seq_len=seq_len,
            decoder_seq_len=decoder_seq_len, batch=batch, image_size=image_size,
            text_only=text_only, device=hf.device)
    except InputSynthesisError as error:
        raise HFSpecError(f"{hf.model_type}: {error}") from None
    if hf.dtype is not None:      # pixels and other floating inputs in the model's dtype
        tensors = [t.to(hf.dtype) if t.is_floating_point() else t for t in tensors]
    return tensors, names, rest


def input_names(hf: HFModel, seq_len: int, batch: int = 1, text_only: bool = False
                ) -> List[str]:
    """The names of the inputs :func:`count_hf` gives ``hf``'s model at ``seq_len`` text
    tokens (``["input_ids", "attention_mask"]``, a VLM's ``pixel_values``, ...).

    Raises:
        HFSpecError: the inputs cannot be synthesised (as :func:`count_hf`).
    """
    return list(_inputs(hf, seq_len, batch, None, None, text_only)[1])


def _count(model, tensors, names, preset, strict, engine, hardware=None) -> CountReport:
    """``engine=None``: the JIT engine, and the dispatch engine where the tracer cannot take
    the model (an internal tracer error, a model that breaks under tracing); the report's
    ``engine`` says which counted. A data-dependent model on meta is not retried: the
    dispatch engine cannot read meta data either. ``hardware``: the dispatch engine, with
    roofline times on that device."""
    with warnings.catch_warnings(), no_data_checks():
        warnings.simplefilter("ignore")
        if hardware is not None:
            if engine not in (None, "dispatch"):
                raise HFSpecError("--hardware needs the dispatch engine (bytes are read at the "
                                  "dispatcher): leave out --engine or give --engine dispatch")
            return count_model(model, tensors, names, preset, strict, engine="dispatch",
                               hardware=hardware)
        try:
            return count_model(model, tensors, names, preset, strict, engine=engine or "jit")
        except ValueError as error:
            if "unknown engine" in str(error):
                raise HFSpecError(str(error)) from None
            if engine is not None:
                raise
            first = error
        except (MetaDeviceError, UncountableOpError):
            raise
        except Exception as error:   # the tracer or the model's code under tracing
            if engine is not None:
                raise
            first = error
        try:
            return count_model(model, tensors, names, preset, strict, engine="dispatch")
        except Exception:
            raise first from None


def families(report: CountReport) -> Dict[str, int]:
    """MACs per rule family (:data:`fvcore_ext.ops.FAMILIES`, plus ``"unknown"`` for ops
    with no rule), largest first. Uses ``report.by_family`` where the report has it, else maps
    ``report.by_operator`` through the op table (rule name → family)."""
    given = getattr(report, "by_family", None)
    if given:
        return dict(sorted(given.items(), key=lambda kv: -kv[1]))
    family_of = {rule.name: rule.family for rule in OP_TABLE.values()}
    totals: Dict[str, int] = {}
    for op, macs in report.by_operator.items():
        fam = family_of.get(op, "unknown")
        totals[fam] = totals.get(fam, 0) + macs
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _training_engine(engine: Optional[str]) -> str:
    if engine not in (None, "dispatch"):
        raise HFSpecError(f"backward needs the dispatch engine (engine {engine!r} records no "
                          f"backward pass): leave out --engine or give --engine dispatch")
    return "dispatch"


def _count_training(model: nn.Module, tensors, names, preset: str, strict: bool,
                    hardware=None) -> CountReport:
    """One training step on the dispatch engine: the forward in train mode, then the backward
    from the sum of the floating outputs (``count_model(..., backward=True)``; the model's
    ``use_cache`` is left as it is: without a cache, transformers reads the position ids' values
    to find packed sequences, which meta cannot). The report also
    has ``forward_by_family`` and ``backward_by_family`` (:func:`pass_families`)."""
    with warnings.catch_warnings(), no_data_checks():
        warnings.simplefilter("ignore")
        try:
            return count_model(model, tensors, names, preset, strict, engine="dispatch",
                               backward=True, hardware=hardware)
        except ValueError as error:
            if "requires grad" in str(error):
                raise HFSpecError(f"{type(model).__name__}: no output requires grad, nothing "
                                  f"to train (every parameter frozen?)") from None
            raise


def pass_families(report: CountReport) -> Tuple[Optional[Dict[str, int]],
                                                Optional[Dict[str, int]]]:
    """``(forward, backward)``: MACs per rule family of each pass of a training count from
    :func:`count_hf` (``backward=True``); ``(families(report), {})`` for a forward-only count;
    ``(None, None)`` where the split is not known (a model whose train-mode forward differs from
    its eval-mode forward, such as BatchNorm's batch statistics: only the totals
    ``report.forward_macs`` / ``report.backward_macs`` are split)."""
    if not report.backward_macs:
        return families(report), {}
    forward = getattr(report, "forward_by_family", None)
    backward = getattr(report, "backward_by_family", None)
    if forward is None or backward is None:
        return None, None
    order = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
    return order(forward), order(backward)


def count_hf(spec: Union[str, HFModel], seq_len: int = DEFAULT_SEQ_LEN, batch: int = 1,
             image_size=None, overrides: Optional[Dict[str, Any]] = None,
             head: Optional[str] = None, preset: str = "full", engine: Optional[str] = None,
             device: str = "meta", decoder_seq_len: Optional[int] = None,
             text_only: bool = False, strict: bool = False,
             backward: bool = False, hardware=None,
             dtype: Optional[torch.dtype] = None) -> CountReport:
    """Count a Hugging Face model from its config: the forward pass (prefill) over inputs
    synthesised by :func:`fvcore_ext.hf.inputs.make_inputs`, or with ``backward=True`` one
    training step (forward + backward).

    Args:
        spec: a config.json, a directory, a model type or a Hub id (:func:`resolve_config`), or
            an :class:`HFModel` from :func:`load_hf` (built once, counted at several lengths).
        seq_len: text tokens ``L`` (``input_ids`` ``(batch, L)``; a VLM adds its image tokens;
            an encoder–decoder's decoder gets ``decoder_seq_len``, default ``L``; Whisper's
            encoder always gets its 30 s window).
        batch: batch size ``B``.
        image_size: ``H`` or ``(H, W)`` of image inputs; default the config's.
        overrides: dotted config key → value (``{"text_config.num_hidden_layers": 2}``).
        head: the model class (:func:`load_hf`); the base model by default.
        preset: ``"full"`` or ``"paper"``.
        engine: ``"jit"``: the JIT tracer (fvcore + the pack's handles); ``"dispatch"``:
            PyTorch's dispatcher (:mod:`fvcore_ext.engines.dispatch`), the same totals and families
            by the contract. ``None`` (default): JIT, and dispatch where the tracer fails on
            the model (``report.engine`` says which counted).
        device: ``"meta"`` (default; shapes only, the CPU numbers) or ``"cpu"``.
        decoder_seq_len: an encoder–decoder's decoder tokens (default ``seq_len``).
        text_only: token ids only, no image (a VLM's language path).
        strict: raise instead of counting 0 where an op cannot be counted.
        backward: count a training step on the dispatch engine: the model (with its real head:
            ``head="causal-lm"`` gives the LM loss's logits) in train mode, no KV cache, the
            forward, then the backward from the sum of its floating outputs (seeding it costs
            0; every parameter with ``requires_grad`` gets its gradient, a frozen one none).
            ``report.forward_macs`` + ``report.backward_macs`` = ``report.total_macs``; per
            family and pass: :func:`pass_families`. Nothing of the model changes (its mode and
            every ``.grad`` are restored). A KV cache the forward returns (a transformers
            ``Cache`` object) is not part of the seed.
        hardware: a device (``"h100"``, a spec, or :class:`fvcore_ext.roofline.Hardware`):
            count on the dispatch engine and add bytes and roofline times to the report.
        dtype: build the model in this dtype (:func:`load_hf`).

    Returns:
        A :class:`fvcore_ext.CountReport` (MACs; ``total_flops`` = 2 x MACs).

    Raises:
        HFSpecError: the spec, an override, the head or the inputs cannot be resolved (one
            line naming what is missing); ``backward`` with ``engine="jit"``, or with no
            output that requires grad.
        fvcore_ext.meta.MetaDeviceError: on meta, the model reads tensor data; use
            ``device="cpu"``.
        Whatever the model raises while traced.
    """
    check_preset(preset)
    if backward:
        _training_engine(engine)
    hf = load_hf(spec, overrides, head, device, dtype=dtype)
    tensors, names, _ = _inputs(hf, seq_len, batch, image_size, decoder_seq_len, text_only)
    if backward:
        return _count_training(hf.model, tensors, names, preset, strict, hardware)
    return _count(hf.model, tensors, names, preset, strict, engine, hardware)


# ---------------------------------------------------------------- decode

def _cache_tensors(cache) -> List[torch.Tensor]:
    """Every tensor a transformers cache object holds (its layers' keys and values, an
    encoder–decoder cache's two caches, a Mamba cache's states), in a fixed order."""
    found: List[torch.Tensor] = []
    seen = set()

    def walk(obj, depth):
        if isinstance(obj, torch.Tensor):
            if id(obj) not in seen:
                seen.add(id(obj))
                found.append(obj)
        elif depth > 5:
            return
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                walk(value, depth + 1)
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value, depth + 1)
        elif type(obj).__module__.startswith("transformers") and hasattr(obj, "__dict__"):
            for value in vars(obj).values():
                walk(value, depth + 1)

    walk(cache, 0)
    return found


class CachedDecodeStep(nn.Module):
    """One decode step as a module the JIT tracer can take: its inputs are the new token ids
    ``(B, 1)`` and every tensor of a prefill's cache; ``forward`` rebuilds the cache object
    around them (a deep copy of the template whose tensors are the traced inputs) and calls
    the model with it, so the trace sees plain tensors."""

    def __init__(self, model: nn.Module, cache, cache_kwarg: str, id_name: str,
                 extra_names: Sequence[str] = ()):
        super().__init__()
        self.model = model
        self.cache_kwarg, self.id_name, self.extra_names = cache_kwarg, id_name, list(extra_names)
        self._template = cache
        self._slots = _cache_tensors(cache)

    def forward(self, ids: torch.Tensor, *rest: torch.Tensor):
        n = len(self._slots)
        memo = {id(old): new for old, new in zip(self._slots, rest[:n])}
        memo[id(memo)] = list(self._slots)    # deepcopy's keep-alive slot
        cache = copy.deepcopy(self._template, memo)
        kwargs = {self.id_name: ids, self.cache_kwarg: cache, "use_cache": True}
        for name, value in zip(self.extra_names, rest[n:]):
            kwargs[name] = (value,) if name == "encoder_outputs" else value
        return self.model(**kwargs)


def _strip_model(name: str) -> str:
    return "" if name == "model" else name[len("model."):] if name.startswith("model.") else name


def _decode_step(hf: HFModel, cache_len: int, batch: int, image_size, preset: str,
                 strict: bool, engine, text_only: bool = False, hardware=None) -> CountReport:
    model = hf.model
    params = inspect.signature(model.forward).parameters
    # transformers 5.25 calls the argument and the output field "cache"; before, it was
    # "past_key_values" ("cache_params" for Mamba)
    cache_kwarg = next((k for k in CACHE_NAMES if k in params), None)
    if cache_kwarg is None:
        raise HFSpecError(f"{type(model).__name__} takes no KV cache (no "
                          f"{' / '.join(CACHE_NAMES)} argument): it has no decode step")
    tensors, names, _ = _inputs(hf, cache_len, batch, image_size, text_only=text_only)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ..runtime.meta import meta_tracing
        with meta_tracing(), no_data_checks():
            out = model(**dict(zip(names, tensors)), use_cache=True)
    cache = next((getattr(out, k) for k in CACHE_NAMES if getattr(out, k, None) is not None),
                 None)
    if cache is None:
        raise HFSpecError(f"{type(model).__name__} returned no cache from its prefill")
    is_seq2seq = "decoder_input_ids" in names
    id_name = "decoder_input_ids" if is_seq2seq else "input_ids"
    extra, extra_names = [], []
    if is_seq2seq:
        encoder = getattr(out, "encoder_last_hidden_state", None)
        if encoder is None:
            raise HFSpecError(f"{type(model).__name__}'s prefill returned no encoder output")
        extra, extra_names = [encoder], ["encoder_outputs"]
    ids = torch.zeros(batch, 1, dtype=torch.long, device=tensors[0].device) + 3
    step = CachedDecodeStep(model, cache, cache_kwarg, id_name, extra_names)
    cache_tensors = _cache_tensors(cache)
    report = _count(step, [ids] + cache_tensors + extra, None, preset, strict, engine, hardware)
    report.inputs = [(id_name, (batch, 1))] + (
        [(f"{cache_kwarg} ({len(cache_tensors)} tensors, the first)",
          tuple(cache_tensors[0].shape))] if cache_tensors else []) + \
        [(n, tuple(t.shape)) for n, t in zip(extra_names, extra)]
    for key in ("by_module", "bytes_by_module", "seconds_by_module", "bound_by_module"):
        setattr(report, key, {_strip_model(k): v for k, v in getattr(report, key).items()})
    report.unused_modules = [_strip_model(m) for m in report.unused_modules]
    report.fused_weight_modules = {_strip_model(k): v
                                   for k, v in report.fused_weight_modules.items()}
    report.params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return report


def count_decode(spec: Union[str, HFModel], seq_len: int = DEFAULT_SEQ_LEN,
                 new_tokens: int = DEFAULT_NEW_TOKENS, batch: int = 1, image_size=None,
                 overrides: Optional[Dict[str, Any]] = None, head: Optional[str] = None,
                 preset: str = "full", engine: Optional[str] = None, device: str = "meta",
                 text_only: bool = False, strict: bool = False, hardware=None,
                 dtype: Optional[torch.dtype] = None) -> DecodeCost:
    """One generation step after a prefill of ``seq_len`` tokens, and the cost of generating
    ``new_tokens`` tokens.

    The step's inputs are one new token ``(batch, 1)`` and the KV cache that a prefill of
    ``seq_len`` tokens leaves (for a VLM: text and image tokens; an encoder–decoder also gets
    the encoder output, and its cross-attention cache). The cache comes from running the
    prefill (on meta: shapes only); the step is traced through :class:`CachedDecodeStep` (JIT
    engine, cache wrapped). Generating ``T`` tokens costs ``Σ_{t<T} step(seq_len + t)``: the
    step is counted at ``seq_len``, ``seq_len + 1`` and ``seq_len + T - 1``; when the three lie
    on a line (attention over the cache is linear in its length) the sum is exact, else it is
    interpolated and ``exact`` is False (sliding windows, for instance).

    Args: as :func:`count_hf`; ``new_tokens`` ``T`` ≥ 1. With ``hardware`` the step's report
    has its bytes (the weights, the KV cache read, the activations) and roofline time.

    Returns:
        A :class:`DecodeCost` (MACs).

    Raises:
        HFSpecError: the model takes no cache, returns none, or the spec cannot be resolved.
        fvcore_ext.meta.MetaDeviceError: on meta, the model reads tensor data.
    """
    check_preset(preset)
    if new_tokens < 1:
        raise HFSpecError(f"new_tokens must be at least 1, not {new_tokens}")
    hf = load_hf(spec, overrides, head, device, dtype=dtype)
    step = _decode_step(hf, seq_len, batch, image_size, preset, strict, engine, text_only,
                        hardware)
    how = DECODE_NOTE if getattr(step, "engine", "jit") == "jit" else \
        "dispatch engine, the cache rebuilt around its tensors for each count"
    if new_tokens == 1:
        return DecodeCost(seq_len, step, 0, 1, step.total_macs, True, how)
    after = _decode_step(hf, seq_len + 1, batch, image_size, preset, strict, engine,
                         text_only).total_macs
    slope = after - step.total_macs
    steps = new_tokens - 1
    exact = True
    if new_tokens > 2:
        last = _decode_step(hf, seq_len + steps, batch, image_size, preset, strict,
                            engine, text_only).total_macs
        exact = last == step.total_macs + slope * steps
        if not exact:
            slope_avg = (last - step.total_macs) / steps
            total = round(new_tokens * step.total_macs + slope_avg * steps * new_tokens / 2)
            return DecodeCost(seq_len, step, slope, new_tokens, int(total), False, how)
    total = new_tokens * step.total_macs + slope * steps * new_tokens // 2
    return DecodeCost(seq_len, step, slope, new_tokens, total, exact, how)


# ---------------------------------------------------------------- FLOPs against length

def sweep_hf(spec: Union[str, HFModel], seq_lens: Sequence[int], batch: int = 1,
             image_size=None, overrides: Optional[Dict[str, Any]] = None,
             head: Optional[str] = None, preset: str = "full", engine: Optional[str] = None,
             device: str = "meta", decode: bool = False,
             new_tokens: int = DEFAULT_NEW_TOKENS, text_only: bool = False,
             strict: bool = False, backward: bool = False,
             progress: Optional[Callable[[Sequence[int]], Iterable[int]]] = None,
             hardware=None, dtype: Optional[torch.dtype] = None) -> List[SweepRow]:
    """:func:`count_hf` (and, with ``decode``, :func:`count_decode`) at each length of
    ``seq_lens``, building the model once. Returns one :class:`SweepRow` per length (MACs);
    with ``backward=True`` each row is a training step (forward + backward, :func:`count_hf`).
    ``progress``, if given, wraps ``seq_lens`` (a progress bar such as ``tqdm``); ``hardware``
    and ``dtype`` as :func:`count_hf`.

    Raises what :func:`count_hf` raises; ``HFSpecError`` for ``decode`` with ``backward`` (a
    decode step is inference)."""
    if decode and backward:
        raise HFSpecError("--decode counts inference steps; it does not combine with --backward")
    if backward:
        _training_engine(engine)
    hf = load_hf(spec, overrides, head, device, dtype=dtype)
    rows = []
    for n in (progress(seq_lens) if progress else seq_lens):
        t0 = time.perf_counter()
        report = count_hf(hf, n, batch, image_size, preset=preset, engine=engine,
                          text_only=text_only, strict=strict, backward=backward,
                          hardware=hardware)
        cost = count_decode(hf, n, new_tokens, batch, image_size, preset=preset,
                            engine=engine, text_only=text_only, strict=strict,
                            hardware=hardware) \
            if decode else None
        rows.append(SweepRow(n, report, families(report), cost,
                             round(time.perf_counter() - t0, 2), training=backward))
    return rows
