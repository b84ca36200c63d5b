"""Op census of the whole ``transformers`` model zoo (plus the pack's reference models).

For every model type of ``transformers.models.auto.modeling_auto.MODEL_MAPPING_NAMES`` (every
type with a base model class) this script builds the base model on CPU from a *shrunk* default
config (random weights, nothing is downloaded), makes inputs from ``model.main_input_name``,
runs :func:`fvcore_ext.cli.census.census` on it (preset ``full``) and aggregates the op kinds of all
traces: their rule family (or ``unknown``), in how many models each appears, and which ops have
a rule that could not read some call (``uncounted``). Models that fail to build or trace are
skipped with a one-line reason; one model never stops the sweep.

Shrinking is generic (:func:`shrink`): hidden sizes to 64 with 4 heads (head_dim 16, 2 KV heads
where the default config uses GQA), 2 layers of each kind, small FFN/vocab/expert counts, image
size 32 or 64 with the patch size dividing it, nested sub-configs (``text_config``,
``vision_config``, ``backbone_config``, ...) shrunk recursively. A few model types get extra
overrides (:data:`EXTRA`). Each model is tried at up to three levels: ``tiny`` (everything
above), ``narrow`` (layers, vocab, experts and image size only, widths kept) and ``default``
(the default config), stopping at the first that builds and traces. A level whose parameter
count (measured on the ``meta`` device first) exceeds 50M is not built. The exact config kwargs
of each traced model are what the config class is called with, so they round-trip through JSON.

Run (from the repository root)::

    python benchmarks/census_zoo.py                       # whole zoo -> benchmarks/CENSUS.md
    python benchmarks/census_zoo.py --limit 20            # the first 20 model types
    python benchmarks/census_zoo.py --only llama bert     # just these model types
    python benchmarks/census_zoo.py --json census.json    # also dump every per-model result
    # two shards in parallel, then one report:
    python benchmarks/census_zoo.py --shard 0/2 --json /tmp/s0.json &
    python benchmarks/census_zoo.py --shard 1/2 --json /tmp/s1.json; wait
    python benchmarks/census_zoo.py --merge /tmp/s0.json /tmp/s1.json
    # rerun a few types and let their records replace the shards' ones:
    python benchmarks/census_zoo.py --only mamba2 esm --no-reference --json /tmp/fix.json
    python benchmarks/census_zoo.py --merge /tmp/s0.json /tmp/s1.json /tmp/fix.json

It also writes ``benchmarks/census_zoo_tiny_configs.json``: for every model traced at level
``tiny`` in under 3 s, ``{"name", "config_class", "model_class", "config", "inputs"}`` (``--tiny``
to change the path). On 2 shared CPU cores the whole sweep (~620 model types) takes about 25-35
minutes, most of it importing modelling code and building models; a single model takes ~0.5-3 s.
Each model gets a 30 s time limit (``--timeout``), checked with ``SIGALRM``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import inspect
import json
import math
import os
import platform
import signal
import sys
import time
import warnings
from collections import Counter, defaultdict
from typing import Any, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fvcore_ext.cli.census import UNKNOWN_FAMILY, census  # noqa: E402
from fvcore_ext.ops.diagnostics import collect_ops  # noqa: E402
from fvcore_ext.hf.inputs import make_inputs as hf_make_inputs  # noqa: E402

MAX_PARAMS = 50_000_000
WIDTH, HEADS, HEAD_DIM, KV_HEADS = 64, 4, 16, 2
LAYERS, FFN, VOCAB, EXPERTS, TOPK = 2, 128, 512, 4, 2
SEQ, DEC_SEQ = 16, 8
FAST_S = 3.0

# Config attributes by role (names used across the zoo).
HIDDEN_KEYS = {"hidden_size", "d_model", "n_embd", "n_embed", "embed_dim", "dim", "model_dim",
               "d_embed", "word_embed_proj_dim", "embedding_size", "embedding_dim",
               "hidden_dim", "encoder_hidden_size", "text_embed_dim", "vision_embed_dim",
               "projection_dim", "proj_dim", "d_inner_hidden", "encoder_embed_dim",
               "decoder_hidden_size", "decoder_embed_dim", "emb_dim", "width", "n_embd_dim",
               "attention_hidden_size", "kv_channels", "hidden_sizes_single"}
HEAD_KEYS = {"num_attention_heads", "n_head", "num_heads", "encoder_attention_heads",
             "decoder_attention_heads", "n_heads", "num_head", "attention_heads",
             "decoder_num_attention_heads", "encoder_num_attention_heads", "num_attn_heads"}
KV_HEAD_KEYS = {"num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num",
                "num_query_groups", "n_head_kv", "num_kv_heads_text"}
HEAD_DIM_KEYS = {"head_dim", "attention_head_dim", "d_kv", "d_head", "kv_dim", "attn_head_size",
                 "v_head_dim", "qk_nope_head_dim", "head_size"}
LAYER_KEYS = {"num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers",
              "decoder_layers", "num_encoder_layers", "num_decoder_layers", "decoder_num_layers",
              "encoder_num_layers", "num_decoder_hidden_layers", "num_encoder_hidden_layers",
              "text_num_hidden_layers", "vision_num_hidden_layers", "depth",
              "num_single_layers", "decoder_depth", "encoder_depth", "n_layers_text"}
FFN_KEYS = {"intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "d_ff",
            "n_inner", "ffn_hidden_size", "decoder_intermediate_size", "inner_hidden_size",
            "d_inner", "mlp_dim", "ff_dim", "feed_forward_size", "hidden_dim_ffn",
            "dense_intermediate_size", "encoder_intermediate_size", "ffn_size"}
MOE_FFN_KEYS = {"moe_intermediate_size", "shared_expert_intermediate_size",
                "expert_intermediate_size", "ffn_hidden_size_moe", "moe_ffn_hidden_size"}
EXPERT_KEYS = {"num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts",
               "num_moe_experts", "n_experts", "num_routed_experts"}
TOPK_KEYS = {"num_experts_per_tok", "moe_topk", "top_k", "num_experts_per_token",
             "moe_top_k", "router_topk", "num_selected_experts", "top_k_experts"}
VOCAB_KEYS = {"vocab_size", "n_vocab", "text_vocab_size"}
POS_KEYS = {"max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length",
            "n_ctx", "seq_length", "max_seq_length", "block_size"}
IMAGE_KEYS = {"image_size", "img_size", "input_size"}
PATCH_KEYS = {"patch_size"}
DEPTH_LIST_KEYS = {"depths", "num_layers_per_stage", "layers", "blocks", "stage_depths",
                   "depth_per_stage", "num_blocks", "block_depths", "encoder_depths"}
WIDTH_LIST_KEYS = {"hidden_sizes", "embed_dims", "dims", "embed_dim_list", "channels",
                   "widths", "encoder_hidden_sizes", "hidden_dims", "stage_channels",
                   "conv_dim", "out_channels_list", "embedding_dims"}
HEAD_LIST_KEYS = {"num_heads", "num_attention_heads", "heads", "encoder_attention_heads_list"}
TOKEN_ID_KEYS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
                 "sep_token_id", "cls_token_id", "mask_token_id", "unk_token_id")
NOISE_KEYS = {"transformers_version", "architectures", "_name_or_path", "id2label",
              "label2id", "_attn_implementation_autoset", "torch_dtype", "dtype",
              "_commit_hash", "output_hidden_states", "return_dict", "chunk_size_feed_forward",
              "problem_type", "tf_legacy_loss", "use_bfloat16", "pruned_heads", "tie_encoder_decoder",
              "add_cross_attention", "is_decoder", "tokenizer_class", "prefix",
              "finetuning_task", "task_specific_params", "output_attentions", "torchscript",
              "cross_attention_hidden_size", "_output_attentions", "base_model_tp_plan",
              "base_model_pp_plan", "base_model_ep_plan", "keys_to_ignore_at_inference",
              "attribute_map", "sub_configs"}

# Per model type: extra config overrides (applied after the generic shrink, at every level).
EXTRA: Dict[str, Dict[str, Any]] = {
    "jamba": {"attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2,
              "expert_layer_offset": 1, "mamba_dt_rank": 8, "mamba_d_state": 8},
    "deepseek_v3": {"head_dim": 8, "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1,
                    "q_lora_rank": 32, "kv_lora_rank": 32, "qk_rope_head_dim": 8,
                    "qk_nope_head_dim": 16, "v_head_dim": 16, "n_shared_experts": 1},
    "deepseek_v2": {"head_dim": 8, "first_k_dense_replace": 1, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
                    "q_lora_rank": 32, "kv_lora_rank": 32, "qk_rope_head_dim": 8,
                    "qk_nope_head_dim": 16, "v_head_dim": 16, "n_shared_experts": 1},
    "dbrx": {"d_model": 64, "n_heads": 4, "n_layers": 2, "max_seq_len": 64, "vocab_size": 512,
             "attn_config": {"kv_n_heads": 2, "clip_qkv": 8.0, "rope_theta": 10000.0},
             "ffn_config": {"ffn_hidden_size": 128, "moe_num_experts": 4, "moe_top_k": 2}},
    "mamba2": {"num_heads": 8, "head_dim": 16, "n_groups": 1},
    "esm": {"vocab_size": 33, "pad_token_id": 1, "mask_token_id": 32},
    "zamba": {"num_hidden_layers": 2, "attn_layer_period": 2, "attn_layer_offset": 1,
              "mamba_d_state": 8, "mamba_dt_rank": 8},
}


class Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def raise_timeout(signum, frame):
        raise Timeout(f"took over {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200]


# ---------------------------------------------------------------- shrinking

def _is_config(value) -> bool:
    from transformers import PretrainedConfig
    return isinstance(value, PretrainedConfig)


def _init_keys(cls) -> set:
    """The kwargs a config class takes (dataclass fields in transformers 5, else __init__)."""
    import dataclasses
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    return set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


def _config_items(config) -> Dict[str, Any]:
    """Attributes of a config that its class takes as kwargs (minus private/noise): derived
    attributes (Swin's ``num_layers``, ...) are left to the class to recompute."""
    keys = _init_keys(type(config))
    return {k: v for k, v in vars(config).items()
            if not k.startswith("_") and k not in NOISE_KEYS and k in keys}


def _halve_list(values: List[int], target: int) -> List[int]:
    values = list(values)
    while max(values) > target and all(v % 2 == 0 for v in values):
        values = [v // 2 for v in values]
    return values


def shrink(config, level: str, top: bool = True) -> Dict[str, Any]:
    """Config kwargs (JSON-able) that rebuild ``config``'s class at the given level:
    ``tiny`` (narrow and shallow), ``narrow`` (shallow, widths kept) or ``default`` ({}).
    Sub-configs come back as dicts (their diff from their class defaults plus overrides and
    ``model_type``)."""
    if level == "default":
        return {}
    items = _config_items(config)
    out: Dict[str, Any] = {}
    tiny = level == "tiny"
    orig_heads = next((items[k] for k in HEAD_KEYS if isinstance(items.get(k), int)), None)
    orig_kv = next((items[k] for k in KV_HEAD_KEYS if isinstance(items.get(k), int)), None)
    orig_layers = next((items[k] for k in ("num_hidden_layers", "num_layers", "n_layer",
                                           "n_layers") if isinstance(items.get(k), int)), None)
    if any(isinstance(items.get(k), (list, tuple)) for k in DEPTH_LIST_KEYS):
        orig_layers = None  # hierarchical: lists are per stage, not per layer
    shrunk_width = tiny and any(isinstance(items.get(k), int) and items[k] > WIDTH
                                for k in HIDDEN_KEYS)
    for key, value in items.items():
        if _is_config(value):
            out[key] = sub_config_dict(value, level)
            continue
        if isinstance(value, dict) and value.get("model_type") and key.endswith("config"):
            try:
                from transformers import CONFIG_MAPPING
                sub = CONFIG_MAPPING[value["model_type"]](**value)
                out[key] = sub_config_dict(sub, level)
            except Exception:
                pass
            continue
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if key in LAYER_KEYS and value > LAYERS:
                out[key] = LAYERS if tiny or value > LAYERS else value
            elif key in EXPERT_KEYS and value > EXPERTS:
                out[key] = EXPERTS
            elif key in TOPK_KEYS and value > TOPK:
                out[key] = TOPK
            elif key in VOCAB_KEYS and value > VOCAB:
                out[key] = VOCAB
            elif key in POS_KEYS and value > 128 and key != "seq_length":
                out[key] = 128 if tiny else min(value, 512)
            elif key in IMAGE_KEYS and value > 64:
                out[key] = 64
            elif key == "first_k_dense_replace" and value > 1:
                out[key] = 1
            elif key in ("n_group", "topk_group") and value > 1:
                out[key] = 1
            elif key in ("num_mel_bins",) and value > 80:
                pass
            elif key == "max_source_positions" and value > 64:
                out[key] = 64
            elif key == "max_target_positions" and value > 64:
                out[key] = 64
            elif not tiny:
                continue
            elif key in HIDDEN_KEYS and value > WIDTH:
                out[key] = WIDTH
            elif key in HEAD_KEYS and value > HEADS:
                out[key] = HEADS
            elif key in KV_HEAD_KEYS:
                out[key] = HEADS if (orig_kv is not None and orig_heads is not None
                                     and orig_kv == orig_heads) else min(value, KV_HEADS)
            elif key in HEAD_DIM_KEYS and value > HEAD_DIM:
                out[key] = HEAD_DIM
            elif key in FFN_KEYS and value > FFN:
                out[key] = FFN
            elif key in MOE_FFN_KEYS and value > 32:
                out[key] = 32
            elif key in ("q_lora_rank", "kv_lora_rank") and value > 32:
                out[key] = 32
            elif key == "qk_rope_head_dim" and value > 8:
                out[key] = 8
            elif key in ("time_step_rank", "mamba_dt_rank", "dt_rank") and value > 8:
                out[key] = 8
            elif key in ("state_size", "d_state", "mamba_d_state", "ssm_state_size") and value > 16:
                out[key] = 16
            elif key in ("n_groups", "mamba_n_groups") and value > 1:
                out[key] = 1
            elif key in ("mamba_n_heads", "mamba_num_heads") and value > 4:
                out[key] = 4
            elif key in ("mamba_d_head", "mamba_head_dim") and value > 32:
                out[key] = 32
            elif key == "chunk_size" and value > 64 and "mamba" in config.model_type:
                out[key] = 64
            elif key in ("num_channels_conv", "conv_channels", "num_filters") and value > 32:
                out[key] = 32
            elif key in ("codevector_dim", "proj_codevector_dim", "classifier_proj_size",
                         "output_hidden_size", "tdnn_dim_single", "xvector_output_dim") \
                    and value > 64:
                out[key] = 64
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            if key in DEPTH_LIST_KEYS and max(value) > 1:
                out[key] = [min(v, 1) if v > 0 else v for v in value]
            elif tiny and key in WIDTH_LIST_KEYS and max(value) > 64:
                out[key] = _halve_list(value, 64)
            elif shrunk_width and key in HEAD_LIST_KEYS and max(value) > 1:
                g = math.gcd(*value)
                out[key] = [v // g for v in value]
            elif orig_layers and len(value) == orig_layers and orig_layers > LAYERS \
                    and key not in ("conv_kernel", "conv_stride"):
                out[key] = list(value[:LAYERS])
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            if orig_layers and len(value) == orig_layers and orig_layers > LAYERS:
                if key == "layer_types" or "layer" in key or "block" in key:
                    kinds = list(dict.fromkeys(value))  # one layer of each kind if we can
                    out[key] = (kinds + list(value))[:LAYERS] if len(kinds) <= LAYERS \
                        else list(value[:LAYERS])
    # vocab must cover every special token id
    ids = [items.get(k) for k in TOKEN_ID_KEYS]
    ids = [i for i in ids if isinstance(i, int)] + [
        j for k in TOKEN_ID_KEYS if isinstance(items.get(k), list) for j in items[k]
        if isinstance(j, int)]
    for key in VOCAB_KEYS:
        if key in out and ids and max(ids) >= out[key]:
            out[key] = max(ids) + 1
    if tiny and isinstance(items.get("window_size"), int) and items["window_size"] > 4 and \
            any(isinstance(items.get(k), (list, tuple)) for k in DEPTH_LIST_KEYS):
        # Swin-like: windows of 4 and an image whose last stage is one window
        stages = len(next(items[k] for k in DEPTH_LIST_KEYS
                          if isinstance(items.get(k), (list, tuple))))
        patch = items.get("patch_size") if isinstance(items.get("patch_size"), int) else 4
        out["window_size"] = 4
        if "image_size" in items:
            out["image_size"] = patch * 4 * 2 ** (stages - 1)
        return out
    if isinstance(items.get("patch_size"), int):
        size = out.get("image_size", items.get("image_size"))
        patch = items["patch_size"]
        if isinstance(size, int) and size % patch:
            out["image_size"] = patch * max(2, size // patch)
    return out


def sub_config_dict(sub, level: str) -> Dict[str, Any]:
    """A sub-config as a dict: its diff from its class defaults, then shrunk."""
    try:
        defaults = _config_items(type(sub)())
    except Exception:
        defaults = {}
    items = _config_items(sub)
    diff = {}
    for k, v in items.items():
        if _is_config(v):
            continue
        if k not in defaults or defaults[k] != v:
            if _jsonable(v):
                diff[k] = v
    diff.update(shrink(sub, level, top=False))
    diff["model_type"] = sub.model_type
    return diff


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- inputs

def make_inputs(model, config, model_type: str, pixels: bool = False, text_only: bool = False
                ) -> Tuple[List[torch.Tensor], List[str], Dict]:
    """The package's input synthesis (:func:`fvcore_ext.hf.inputs.make_inputs`, which
    ``python -m fvcore_ext hf:SPEC`` uses too) at the census's sizes: ``SEQ`` tokens, ``DEC_SEQ``
    decoder tokens, 4000 audio samples, 64-pixel images where the config names no size.
    ``text_only``: a vision–language model's token ids alone."""
    return hf_make_inputs(model, config, model_type, pixels=pixels, seq_len=SEQ,
                          decoder_seq_len=DEC_SEQ, audio_samples=4000, default_image_size=64,
                          text_only=text_only)


# ---------------------------------------------------------------- one model

def resolve(model_type: str):
    import transformers
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    names = MODEL_MAPPING_NAMES[model_type]
    names = [names] if isinstance(names, str) else list(names)
    model_cls = None
    for n in names:
        model_cls = getattr(transformers, n, None)
        if model_cls is not None:
            break
    if model_cls is None:
        raise ImportError(f"transformers has no {names[0]}")
    return CONFIG_MAPPING[model_type], model_cls


def count_params_meta(model_cls, config) -> Optional[int]:
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = model_cls(config)
        n = sum(p.numel() for p in model.parameters())
        del model
        return n
    except Exception:
        return None


def try_model(model_type: str, levels, timeout: float) -> Dict[str, Any]:
    """Build and trace one model type; the record that goes into the report."""
    record: Dict[str, Any] = {"model_type": model_type, "status": "tried", "attempts": []}
    try:
        config_cls, model_cls = resolve(model_type)
    except Exception as error:
        record.update(status="no-class", reason=one_line(error))
        return record
    record["config_class"], record["model_class"] = config_cls.__name__, model_cls.__name__
    deadline = time.time() + timeout
    for level in levels:
        left = deadline - time.time()
        if left < 1:
            record["attempts"].append((level, "time limit for the model used up"))
            break
        stage = "config"
        try:
            with time_limit(left), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                default = config_cls()
                kwargs = merge(shrink(default, level), EXTRA.get(model_type, {})) \
                    if level != "default" else {}
                kwargs = json.loads(json.dumps(kwargs))  # exactly what the JSON file holds
                config = config_cls(**copy.deepcopy(kwargs))
                stage = "build"
                n_meta = count_params_meta(model_cls, config)
                if n_meta is None and level == "default":
                    raise MemoryError("default config cannot be sized on the meta device")
                if n_meta is not None and n_meta > MAX_PARAMS:
                    raise MemoryError(f"{n_meta / 1e6:.0f}M parameters > 50M")
                torch.manual_seed(0)
                t0 = time.time()
                model = model_cls(config).eval()
                build_s = time.time() - t0
                n_params = sum(p.numel() for p in model.parameters())
                if n_params > MAX_PARAMS:
                    raise MemoryError(f"{n_params / 1e6:.0f}M parameters > 50M")
                stage = "inputs"
                try:
                    tensors, names, desc = make_inputs(model, config, model_type)
                except Exception:
                    # a vision-language model whose image tokens cannot be counted
                    tensors, names, desc = make_inputs(model, config, model_type,
                                                       text_only=True)
                stage = "trace"
                t0 = time.time()
                try:
                    with collect_ops() as log, warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = census(model, tensors, names)
                except Exception:
                    if "image_tokens" in desc:
                        # the shrunk text vocabulary may not hold the image token: the
                        # language path alone, as before the package made VLM inputs
                        tensors, names, desc = make_inputs(model, config, model_type,
                                                           text_only=True)
                    elif "pixel_values" in names or "pixel_values" not in \
                            inspect.signature(model.forward).parameters:
                        raise
                    else:
                        tensors, names, desc = make_inputs(model, config, model_type,
                                                           pixels=True)
                    t0 = time.time()
                    with collect_ops() as log, warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = census(model, tensors, names)
                trace_s = time.time() - t0
        except (Exception, Timeout) as error:
            record["attempts"].append((level, f"{stage}: {one_line(error)}"))
            if stage in ("inputs", "trace"):
                record["status"] = "built"
            gc.collect()
            continue
        finally:
            model = None  # noqa: F841
        record.update(
            status="traced", level=level, config=kwargs, inputs=desc, params=n_params,
            build_s=round(build_s, 2), trace_s=round(trace_s, 2),
            attn=getattr(config, "_attn_implementation", None),
            ops=[(o.op, o.calls, o.family, o.macs) for o in result.ops],
            uncounted={u.op: f"{u.reason} (in {u.scope})" for u in log.uncounted},
            macs=sum(o.macs for o in result.ops))
        gc.collect()
        return record
    if record["status"] == "tried":
        record["status"] = "failed-build"
    elif record["status"] == "built":
        record["status"] = "failed-trace"
    # the reason of the deepest stage reached (a trace error beats a later size refusal)
    order = {"config": 0, "build": 1, "inputs": 2, "trace": 3}
    best = max(record["attempts"], key=lambda a: order.get(a[1].split(":")[0], -1)) \
        if record["attempts"] else ("", "no attempt")
    record["reason"] = f"[{best[0]}] {best[1]}"
    return record


def try_reference_models() -> List[Dict[str, Any]]:
    from fvcore_ext.reference_models import REFERENCE_MODELS, build
    from fvcore_ext.runtime.standins import standin_kernels
    records = []
    for name in REFERENCE_MODELS:
        record = {"model_type": f"reference:{name}", "status": "tried", "attempts": []}
        try:
            with standin_kernels(), time_limit(60), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.manual_seed(0)
                model, inputs = build(name)
                inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
                t0 = time.time()
                with collect_ops() as log:
                    result = census(model, inputs)
            record.update(status="traced", level="reference", trace_s=round(time.time() - t0, 2),
                          params=sum(p.numel() for p in model.parameters()),
                          ops=[(o.op, o.calls, o.family, o.macs) for o in result.ops],
                          uncounted={u.op: f"{u.reason} (in {u.scope})" for u in log.uncounted},
                          inputs={"x": [list(t.shape) for t in inputs]})
        except (Exception, Timeout) as error:
            record.update(status="failed-trace", reason=one_line(error))
        records.append(record)
    return records


# ---------------------------------------------------------------- report

def write_report(records: List[Dict[str, Any]], path: str, elapsed: float, args) -> None:
    import transformers
    hf = [r for r in records if not r["model_type"].startswith("reference:")]
    ref = [r for r in records if r["model_type"].startswith("reference:")]
    tried = len(hf)
    built = sum(r["status"] in ("traced", "failed-trace") for r in hf)
    traced = [r for r in hf if r["status"] == "traced"]
    levels = Counter(r["level"] for r in traced)
    union: Dict[str, Dict[str, Any]] = {}
    for r in records:
        if r["status"] != "traced":
            continue
        for op, calls, family, macs in r["ops"]:
            u = union.setdefault(op, {"family": family, "models": [], "calls": 0})
            u["models"].append(r["model_type"])
            u["calls"] += calls
    uncounted: Dict[str, List[Tuple[str, str]]] = defaultdict(list)
    for r in records:
        for op, why in (r.get("uncounted") or {}).items():
            uncounted[op].append((r["model_type"], why))
    lines = [
        "# Op census of the transformers model zoo",
        "",
        f"Generated by `python benchmarks/census_zoo.py` ({time.strftime('%Y-%m-%d')}, "
        f"{elapsed / 60:.1f} min on {os.cpu_count()} CPU cores): every model type of "
        "`transformers.models.auto.modeling_auto.MODEL_MAPPING_NAMES` built as its base model "
        "from a shrunk default config (random weights) and traced once by "
        "`fvcore_ext.cli.census.census(..., preset=\"full\")`. See the script's docstring for the "
        "shrinking rules.",
        "",
        f"- transformers {transformers.__version__}, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- model types tried: **{tried}**; built: **{built}**; traced: **{len(traced)}** "
        f"(config level: " + ", ".join(f"{k} {v}" for k, v in levels.most_common()) + ")",
        f"- traced in under {FAST_S:.0f} s at the tiny level: "
        f"{sum(r['level'] == 'tiny' and r['trace_s'] + r['build_s'] < FAST_S for r in traced)} "
        "(their configs: `benchmarks/census_zoo_tiny_configs.json`)",
        f"- reference models of the pack (`fvcore_ext.reference_models`, with stand-in "
        f"kernels): {sum(r['status'] == 'traced' for r in ref)} of {len(ref)} traced",
        f"- distinct op kinds over all traces: **{len(union)}**; unknown: "
        f"**{sum(u['family'] == UNKNOWN_FAMILY for u in union.values())}**; with calls a rule "
        f"could not read (uncounted): **{len(uncounted)}**",
        "",
        "## Unknown op kinds (no rule; counted 0 in both tools)",
        "",
    ]
    unknown = sorted((op for op, u in union.items() if u["family"] == UNKNOWN_FAMILY),
                     key=lambda op: -len(union[op]["models"]))
    if unknown:
        lines += ["| op | models | examples |", "|---|---:|---|"]
        for op in unknown:
            ms = sorted(set(union[op]["models"]))
            lines.append(f"| `{op}` | {len(ms)} | {', '.join(ms[:8])}{' ...' if len(ms) > 8 else ''} |")
    else:
        lines.append("None.")
    lines += ["", "## Uncounted op kinds (a rule exists, but could not read some call)", ""]
    if uncounted:
        lines += ["| op | models | examples | first reason |", "|---|---:|---|---|"]
        for op, rows in sorted(uncounted.items(), key=lambda kv: -len(kv[1])):
            ms = sorted({m for m, _ in rows})
            why = rows[0][1].replace("|", "\\|")
            lines.append(f"| `{op}` | {len(ms)} | {', '.join(ms[:8])}{' ...' if len(ms) > 8 else ''} | {why} |")
    else:
        lines.append("None.")
    lines += ["", "## Every op kind seen", "",
              "| op | family | models | calls (all models) |", "|---|---|---:|---:|"]
    for op, u in sorted(union.items(), key=lambda kv: (-len(set(kv[1]["models"])), kv[0])):
        lines.append(f"| `{op}` | {u['family']} | {len(set(u['models']))} | {u['calls']} |")
    lines += ["", "## Traced models", "",
              "| model type | level | params | build s | trace s | op kinds | MACs (full) | unknown |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(traced + [r for r in ref if r["status"] == "traced"],
                    key=lambda r: r["model_type"]):
        unk = [op for op, _, fam, _ in r["ops"] if fam == UNKNOWN_FAMILY]
        lines.append(f"| {r['model_type']} | {r['level']} | {r['params']:,} | "
                     f"{r.get('build_s', 0):.2f} | {r['trace_s']:.2f} | {len(r['ops'])} | "
                     f"{sum(o[3] for o in r['ops']):,} | {', '.join(unk)} |")
    lines += ["", "## Failures", "", "| model type | status | reason |", "|---|---|---|"]
    for r in sorted([r for r in records if r["status"] != "traced"],
                    key=lambda r: (r["status"], r["model_type"])):
        why = (r.get("reason") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['model_type']} | {r['status']} | {why} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_tiny(records: List[Dict[str, Any]], path: str) -> int:
    rows = []
    for r in sorted(records, key=lambda r: r["model_type"]):
        if r["status"] == "traced" and r.get("level") == "tiny" \
                and r["build_s"] + r["trace_s"] < FAST_S:
            rows.append({"name": r["model_type"], "config_class": r["config_class"],
                         "model_class": r["model_class"], "config": r["config"],
                         "inputs": r["inputs"], "params": r["params"],
                         "seconds": round(r["build_s"] + r["trace_s"], 2)})
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    return len(rows)


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="only the first N model types")
    p.add_argument("--only", nargs="+", metavar="MODEL_TYPE")
    p.add_argument("--out", default=os.path.join(here, "CENSUS.md"))
    p.add_argument("--tiny", default=os.path.join(here, "census_zoo_tiny_configs.json"))
    p.add_argument("--json", help="dump every per-model record here")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per model type")
    p.add_argument("--levels", nargs="+", default=["tiny", "narrow", "default"])
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--shard", help="I/N: only every N-th model type from the I-th (0-based); "
                   "with --json, run N shards in parallel and combine them with --merge")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="write the report from --json dumps of shards instead of running")
    args = p.parse_args(argv)
    if args.merge:
        records, elapsed = [], 0.0
        for path in args.merge:
            with open(path) as f:
                dump = json.load(f)
            records += dump["records"]
            elapsed = max(elapsed, dump["elapsed"])
        # a later dump's record of a model type replaces an earlier one (reruns of a few types)
        records = list({r["model_type"]: r for r in records}.values())
        write_report(records, args.out, elapsed, args)
        n_tiny = write_tiny(records, args.tiny)
        print(f"wrote {args.out} and {args.tiny} ({n_tiny} tiny configs)")
        return 0
    torch.set_num_threads(1)
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
    transformers.logging.set_verbosity_error()
    types = list(MODEL_MAPPING_NAMES)
    if args.only:
        types = [t for t in args.only]
    if args.limit:
        types = types[:args.limit]
    shard = 0
    if args.shard:
        shard, n = (int(x) for x in args.shard.split("/"))
        types = types[shard::n]
    start = time.time()
    records = []
    for i, model_type in enumerate(types):
        t0 = time.time()
        try:
            record = try_model(model_type, args.levels, args.timeout)
        except BaseException as error:  # never let one model stop the sweep
            if isinstance(error, KeyboardInterrupt):
                raise
            record = {"model_type": model_type, "status": "failed-build",
                      "reason": one_line(error), "attempts": []}
        records.append(record)
        print(f"[{i + 1}/{len(types)}] {model_type}: {record['status']} "
              f"{record.get('level', '')} {time.time() - t0:.1f}s "
              f"{record.get('reason', '') if record['status'] != 'traced' else ''}"
              + (f" unknown={[o[0] for o in record['ops'] if o[2] == UNKNOWN_FAMILY]}"
                 f" uncounted={list(record['uncounted'])}"
                 if record["status"] == "traced" else ""), flush=True)
    if not args.no_reference and shard == 0:
        records += try_reference_models()
    elapsed = time.time() - start
    write_report(records, args.out, elapsed, args)
    n_tiny = write_tiny(records, args.tiny)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"elapsed": elapsed, "records": records}, f, indent=1, default=str)
    print(f"wrote {args.out} and {args.tiny} ({n_tiny} tiny configs) in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
