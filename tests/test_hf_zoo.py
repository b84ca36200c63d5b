"""Every architecture of ``tests/transformers_zoo.py`` counts through ``hf:`` with the same
total as its hand-built counterpart.

The zoo's config keyword arguments are written to a ``config.json`` (what a user would have),
counted by :func:`fvcore_ext.hf.count_hf` with the zoo's model class as the head, at the zoo's
token count, decoder length and image size. The hand-built model is counted on the same input
shapes (the zoo's own inputs where they agree; hf's shapes where the zoo picked another audio
length). Both on meta, except for the models that read tensor data.
"""
import json
import os

import pytest
import torch

from fvcore_ext import count_model
from fvcore_ext.hf import count_hf
from tests.transformers_zoo import TOKENS, ZOO

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Models that read tensor data in their forward (tests/test_transformers_sweep.py): on CPU.
NEEDS_TENSOR_DATA = {"dbrx", "longformer"}


def _config_json(arch, directory) -> str:
    import transformers

    model_type = getattr(transformers, arch.config).model_type
    path = os.path.join(directory, "config.json")
    with open(path, "w") as f:
        json.dump(dict(arch.kwargs, model_type=model_type), f)
    return path


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_counts_the_same_through_hf(name, tmp_path):
    arch = ZOO[name]
    device = "cpu" if name in NEEDS_TENSOR_DATA else "meta"
    shapes = {n: shape for n, (shape, _) in arch.inputs.items()}
    decoder = shapes.get("decoder_input_ids", (1, None))[1]
    image = shapes["pixel_values"][-2:] if "pixel_values" in shapes else None
    seq = shapes.get("input_ids", (1, TOKENS))[1]
    report = count_hf(_config_json(arch, str(tmp_path)), seq_len=seq, decoder_seq_len=decoder,
                      image_size=image, head=arch.model, device=device,
                      text_only="input_ids" in shapes and "pixel_values" not in shapes)
    assert report.unsupported_ops == {} and report.uncounted == []

    model, inputs, names = arch.build()
    wanted = {n: s for n, s in report.inputs}
    if {n: tuple(x.shape) for n, x in zip(names, inputs)} != wanted:
        # the zoo chose another audio length: count the hand-built model on hf's shapes
        names = list(wanted)
        inputs = [torch.zeros(s, dtype=torch.long) if "ids" in n else torch.randn(s)
                  for n, s in wanted.items()]
    hand = count_model(model, inputs, names, device=device)
    assert report.total_macs == hand.total_macs
    assert report.by_operator == hand.by_operator
