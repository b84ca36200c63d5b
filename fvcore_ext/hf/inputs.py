"""Inputs for a ``transformers`` model, synthesised from its config: token ids, pixel values at
the config's image size, audio features (Whisper, Speech2Text) and raw audio (wav2vec2),
encoder–decoder pairs, and vision–language models (LLaVA, PaliGemma, Qwen2-VL / Qwen2.5-VL,
Idefics, ...) with their image tokens in the prompt where the processor puts them.

:func:`make_inputs` is what both ``fvcore_ext.hf.count`` (``python -m fvcore_ext hf:SPEC``) and the
zoo census (``benchmarks/census_zoo.py``) feed models with. A model whose inputs cannot be
made raises :class:`InputSynthesisError` with one line naming what is missing.
"""
from __future__ import annotations

import contextlib
import inspect
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = ["InputSynthesisError", "image_hw", "is_vision_language", "make_inputs",
           "no_data_checks", "special_token_ids", "token_ids"]

ImageSize = Union[None, int, Sequence[int]]

TOKEN_LOW = 3          # ids 0-2 are pad / bos / eos in most vocabularies
TOKEN_HIGH = 100       # small ids: valid in every vocabulary, shrunk ones included


@contextlib.contextmanager
def no_data_checks():
    """Turn off transformers' data-dependent consistency checks (``torch_compilable_check``,
    which compares an image-token count with the image features' rows by reading tensor
    values) for the block, with transformers' own switch ``TRANSFORMERS_DISABLE_TORCH_CHECK=1``.
    On meta there are no values to read; the inputs made here are consistent by construction.
    """
    old = os.environ.get("TRANSFORMERS_DISABLE_TORCH_CHECK")
    os.environ["TRANSFORMERS_DISABLE_TORCH_CHECK"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TRANSFORMERS_DISABLE_TORCH_CHECK"]
        else:
            os.environ["TRANSFORMERS_DISABLE_TORCH_CHECK"] = old


class InputSynthesisError(ValueError):
    """The model's inputs cannot be made from its config; the message is one line naming what
    is missing."""


def special_token_ids(config) -> set:
    """Every ``*_token_id`` / ``*_token_index`` (int) of ``config`` and its sub-configs."""
    found = set()
    for key, value in vars(config).items():
        if isinstance(value, int) and not isinstance(value, bool) and (
                key.endswith("_token_id") or key.endswith("_token_index")):
            found.add(value)
        elif hasattr(value, "to_dict") and hasattr(value, "model_type"):
            found |= special_token_ids(value)
    return found


def _vocab(config) -> int:
    text = _text_config(config)
    return int(getattr(text, "vocab_size", None) or getattr(config, "vocab_size", None) or 100)


def _sub_config(config, keys):
    # the first of a composite config's sub-configs under keys, or the config itself
    for key in keys:
        sub = getattr(config, key, None)
        if sub is not None and not isinstance(sub, dict):
            return sub
    return config


def _text_config(config):
    return _sub_config(config, ("text_config", "language_config", "llm_config",
                                "decoder_config"))


def _vision_config(config):
    return _sub_config(config, ("vision_config", "backbone_config", "visual_config",
                                "vision_tower_config"))


def token_ids(config, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """``(batch, length)`` long token ids in ``[3, min(vocab, 100))``, none of them a special
    token of the config (an image token among the text would change a VLM's inputs)."""
    hi = max(TOKEN_LOW + 1, min(_vocab(config), TOKEN_HIGH))
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(TOKEN_LOW, hi, (batch, length), generator=g)
    allowed = [i for i in range(TOKEN_LOW, hi) if i not in special_token_ids(config)] or [0]
    bad = torch.zeros_like(ids, dtype=torch.bool)
    for special in special_token_ids(config):
        bad |= ids == special
    return torch.where(bad, torch.full_like(ids, allowed[0]), ids)


def image_hw(config, image_size: ImageSize = None, default: int = 224) -> Tuple[int, int]:
    """``(H, W)`` of the image the model takes: ``image_size`` if given (an int or ``(H, W)``),
    else the vision config's ``image_size`` (``default`` when it has none)."""
    if image_size is None:
        vision = _vision_config(config)
        image_size = getattr(vision, "image_size", None) or getattr(config, "image_size", None)
        if isinstance(image_size, dict):     # {"height": H, "width": W}
            image_size = (image_size.get("height"), image_size.get("width"))
        image_size = image_size or default
    if isinstance(image_size, int):
        return image_size, image_size
    sizes = [int(s) for s in image_size]
    return (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])


def is_vision_language(model: nn.Module, config) -> bool:
    """Whether ``model`` takes token ids and pixel values with image tokens in the prompt."""
    params = inspect.signature(model.forward).parameters
    image_token = _image_token_id(config)
    return image_token is not None and "pixel_values" in params and "input_ids" in params \
        and hasattr(model, "get_image_features")


def _image_token_id(config) -> Optional[int]:
    for key in ("image_token_id", "image_token_index"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


class _Inputs:
    def __init__(self):
        self.tensors: List[torch.Tensor] = []
        self.names: List[str] = []
        self.desc: Dict[str, Any] = {}

    def add(self, key: str, tensor: torch.Tensor) -> None:
        self.tensors.append(tensor)
        self.names.append(key)
        self.desc[key] = {"shape": list(tensor.shape),
                          "dtype": str(tensor.dtype).replace("torch.", "")}


def make_inputs(model: nn.Module, config, model_type: Optional[str] = None, pixels: bool = False,
                seq_len: int = 16, decoder_seq_len: Optional[int] = None, batch: int = 1,
                image_size: ImageSize = None, audio_samples: int = 16000,
                default_image_size: int = 224, text_only: bool = False,
                device: Optional[Union[str, torch.device]] = None
                ) -> Tuple[List[torch.Tensor], List[str], Dict[str, Any]]:
    """Inputs for ``model.forward`` as ``(tensors, keyword names, description)``.

    What is made follows ``model.main_input_name`` and the forward's parameters:
    - token ids ``input_ids`` ``(batch, seq_len)`` (no attention mask: unpadded, the model's
      own causal mask); an encoder–decoder also gets ``decoder_input_ids``
      ``(batch, decoder_seq_len)`` (default: ``seq_len``);
    - ``pixel_values`` ``(batch, C, H, W)`` at ``image_size``, else the config's, else
      ``default_image_size`` (videos:
      ``(batch, frames, C, H, W)``); ``pixels=True`` adds them to a text model (CLIP-like);
    - ``input_features``: Whisper-like ``(batch, mel_bins, 2 · max_source_positions)`` (its
      30 s window), Speech2Text ``(batch, 64, features)``, else ``(batch, 64, mel_bins)``;
      ``input_values`` ``(batch, audio_samples)`` raw audio (wav2vec2, HuBERT);
    - vision–language models (:func:`is_vision_language`): ``seq_len`` text tokens plus the
      image's tokens, counted by running the model's own ``get_image_features`` (on meta:
      shapes only), placed as the processor places them (PaliGemma: first; Qwen2-VL: between
      ``vision_start`` and ``vision_end``; others after the first text token), with
      ``pixel_values`` (and ``image_grid_thw`` for Qwen2-VL).

    ``text_only``: token ids alone (a VLM's language path, a text prompt with no image).

    Token values are drawn from ``[3, min(vocab, 100))`` with a fixed seed, never a special
    token; images and audio are ``randn``. On ``device="meta"`` only shapes are kept.
    ``desc`` maps each name to ``{"shape", "dtype"}`` (JSON-ready) and, for a VLM,
    ``"image_tokens"`` to the number of image tokens in the prompt.

    Raises:
        InputSynthesisError: the main input is of a kind this function cannot make (its
            message names it), or the image-token count cannot be found.
    """
    decoder_seq_len = seq_len if decoder_seq_len is None else decoder_seq_len
    name = getattr(model, "main_input_name", "input_ids")
    params = inspect.signature(model.forward).parameters
    out = _Inputs()
    if text_only:
        if "input_ids" not in params:
            raise InputSynthesisError(f"{type(model).__name__} takes no input_ids: it has no "
                                      f"text-only input")
        _plain_inputs(out, model, config, "input_ids", params, False, seq_len,
                      decoder_seq_len, batch, None, audio_samples)
    elif "aspect_ratio_ids" in params and "cross_attention_mask" in params:
        _cross_attention_vlm_inputs(out, config, seq_len, batch, image_size, default_image_size)
    elif is_vision_language(model, config):
        _vision_language_inputs(out, model, config, model_type, seq_len, batch, image_size,
                                default_image_size)
    else:
        _plain_inputs(out, model, config, name, params, pixels, seq_len, decoder_seq_len,
                      batch, image_size or image_hw(config, None, default_image_size),
                      audio_samples)
    if device is not None:
        out.tensors = [t.to(device) for t in out.tensors]
    return out.tensors, out.names, out.desc


def _plain_inputs(out: _Inputs, model, config, name, params, pixels, seq_len, decoder_seq_len,
                  batch, image_size, audio_samples) -> None:
    if name in ("input_ids", "decoder_input_ids"):
        out.add("input_ids" if "input_ids" in params else name,
                token_ids(config, batch, seq_len))
    if name in ("pixel_values", "pixel_values_videos", "flattened_patches") or pixels:
        vision = _vision_config(config)
        h, w = image_hw(config, image_size)
        channels = getattr(vision, "num_channels", None) or getattr(config, "num_channels", 3)
        g = torch.Generator().manual_seed(0)
        if name == "pixel_values_videos" or "pixel_values_videos" in params and \
                "pixel_values" not in params:
            frames = getattr(vision, "num_frames", 2) or 2
            out.add("pixel_values", torch.randn(batch, frames, channels, h, w, generator=g))
        else:
            out.add("pixel_values", torch.randn(batch, int(channels), h, w, generator=g))
    elif name in ("input_ids", "decoder_input_ids"):
        pass
    elif name == "input_values":
        out.add("input_values", torch.randn(batch, audio_samples))
    elif name == "input_features":
        bins = getattr(config, "num_mel_bins", None) or getattr(config, "feature_size", None)
        per_channel = getattr(config, "input_feat_per_channel", None)
        if per_channel:  # Speech2Text: (B, frames, features)
            out.add("input_features", torch.randn(batch, 64, per_channel * getattr(
                config, "input_channels", 1)))
        elif getattr(config, "max_source_positions", None) and bins:  # Whisper: 30 s window
            out.add("input_features", torch.randn(batch, bins, 2 * config.max_source_positions))
        else:
            out.add("input_features", torch.randn(batch, 64, bins or 80))
    else:
        raise InputSynthesisError(f"cannot synthesise the main input {name!r} of "
                                  f"{type(model).__name__} (token ids, pixel values, audio "
                                  f"features and raw audio are supported)")
    if getattr(config, "is_encoder_decoder", False) or \
            "decoder_input_ids" in params and name != "input_ids":
        if "decoder_input_ids" in params:
            out.add("decoder_input_ids", token_ids(config, batch, decoder_seq_len, seed=1))


def _qwen_vl_patches(config, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Qwen2-VL's processor output for one image: flattened patches
    ``(grid_h · grid_w · grid_t, C · T · P · P)``, ``image_grid_thw`` ``(1, 3)`` and the number of
    image tokens ``grid_h · grid_w / merge²`` (transformers' ``Qwen2VLImageProcessor``)."""
    vision = _vision_config(config)
    patch = getattr(vision, "patch_size", 14)
    temporal = getattr(vision, "temporal_patch_size", 2)
    merge = getattr(vision, "spatial_merge_size", 2)
    channels = getattr(vision, "in_channels", None) or getattr(vision, "in_chans", 3)
    unit = patch * merge                  # the processor resizes to a multiple of this
    gh, gw = max(1, round(h / unit)) * merge, max(1, round(w / unit)) * merge
    pixels = torch.randn(gh * gw, channels * temporal * patch * patch)
    return pixels, torch.tensor([[1, gh, gw]]), gh * gw // (merge * merge)


def _count_image_tokens(model, pixel_values, extra: Dict[str, torch.Tensor]) -> int:
    """Image tokens the model's language model receives for ``pixel_values``: the rows of what
    ``get_image_features`` returns, run where the model is (on meta: shapes only)."""
    from ..runtime.meta import meta_tracing

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad(), meta_tracing(), no_data_checks():
        features = model.get_image_features(pixel_values=pixel_values.to(device),
                                            **{k: v[:1].to(device) for k, v in extra.items()})
    if hasattr(features, "pooler_output") and features.pooler_output is not None:
        features = features.pooler_output
    elif hasattr(features, "last_hidden_state"):
        features = features.last_hidden_state
    if isinstance(features, torch.Tensor):
        features = [features]
    rows = 0
    for feature in features:
        rows += feature.numel() // feature.shape[-1]
    return rows


def _vision_language_inputs(out: _Inputs, model, config, model_type, seq_len, batch,
                            image_size, default_image_size) -> None:
    model_type = model_type or getattr(config, "model_type", "")
    params = inspect.signature(model.forward).parameters
    image_token = _image_token_id(config)
    h, w = image_hw(config, image_size, default_image_size)
    vision = _vision_config(config)
    channels = getattr(vision, "num_channels", None) or 3
    extra: Dict[str, torch.Tensor] = {}
    start = end = None
    if "image_grid_thw" in params:                   # Qwen2-VL, Qwen2.5-VL, Qwen3-VL
        one, grid, per_image = _qwen_vl_patches(config, h, w)
        pixel_values = one.repeat(batch, 1)
        extra["image_grid_thw"] = grid.repeat(batch, 1)
        start = getattr(config, "vision_start_token_id", None)
        end = getattr(config, "vision_end_token_id", None)
    else:
        shape = (batch, channels, h, w)
        if "pixel_attention_mask" in params:         # Idefics, SmolVLM: (B, images, C, H, W)
            shape = (batch, 1, channels, h, w)
        wants = inspect.signature(model.get_image_features).parameters
        if "image_sizes" in wants and wants["image_sizes"].default is inspect.Parameter.empty \
                and "image_sizes" in params:         # Pixtral / Mistral3 need them
            extra["image_sizes"] = torch.tensor([[h, w]] * batch)
        pixel_values = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        try:
            per_image = _count_image_tokens(model, pixel_values[:1], extra)
        except Exception as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise InputSynthesisError(
                f"cannot count {type(model).__name__}'s image tokens from get_image_features "
                f"on a {tuple(pixel_values.shape)} image: {type(error).__name__}: {text}"
            ) from None
    text = token_ids(config, batch, seq_len)
    block = [image_token] * per_image
    if start is not None and end is not None:
        block = [start] + block + [end]
    block_ids = torch.tensor(block, dtype=torch.long).expand(batch, -1)
    if model_type == "paligemma" or seq_len == 0:   # PaliGemma: image, then bos and the text
        ids = torch.cat([block_ids, text], dim=1)
    else:                                            # after the first text token (bos)
        ids = torch.cat([text[:, :1], block_ids, text[:, 1:]], dim=1)
    out.add("input_ids", ids)
    out.add("pixel_values", pixel_values)
    for key, tensor in extra.items():
        out.add(key, tensor)
    if "mm_token_type_ids" in params:                # Qwen3-VL's M-RoPE: 1 marks image tokens
        out.add("mm_token_type_ids", (ids == image_token).long())
    out.desc["image_tokens"] = per_image


def _cross_attention_vlm_inputs(out: _Inputs, config, seq_len, batch, image_size,
                                default_image_size) -> None:
    """Mllama: the prompt holds one image token (after bos); the image is cut into tiles that
    the text attends to through cross-attention. One square image is one tile (aspect ratio
    1x1, id 1) of ``max_num_tiles`` slots, as ``MllamaImageProcessor`` gives it."""
    vision = _vision_config(config)
    tiles = int(getattr(vision, "max_num_tiles", 4))
    h, w = image_hw(config, image_size, default_image_size)
    channels = getattr(vision, "num_channels", None) or 3
    image_token = _image_token_id(config)
    text = token_ids(config, batch, seq_len)
    ids = torch.cat([text[:, :1], torch.full((batch, 1), image_token), text[:, 1:]], dim=1) \
        if image_token is not None else text
    length = ids.shape[1]
    g = torch.Generator().manual_seed(0)
    out.add("input_ids", ids)
    out.add("pixel_values", torch.randn(batch, 1, tiles, channels, h, w, generator=g))
    out.add("aspect_ratio_ids", torch.ones(batch, 1, dtype=torch.long))
    mask = torch.zeros(batch, 1, tiles, dtype=torch.long)
    mask[:, :, 0] = 1
    out.add("aspect_ratio_mask", mask)
    cross = torch.zeros(batch, length, 1, tiles, dtype=torch.long)
    cross[:, :, :, 0] = 1
    out.add("cross_attention_mask", cross)
    out.desc["image_tokens"] = 1
