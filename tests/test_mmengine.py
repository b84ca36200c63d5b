"""The same handle dict works in mmengine's FlopAnalyzer (an fvcore port)."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from fvcore_ext import make_handles
from fvcore_ext.reference_models import build

from tests.helpers import fvcore_count


@pytest.mark.parametrize("name", ["vit", "swin_stage", "unet_decoder", "mamba", "vmamba_block"])
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_flop_analyzer_equals_fvcore(name, preset):
    model, inputs = build(name)
    analyzer = FlopAnalyzer(model, inputs).set_op_handle(**make_handles(preset))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analyzer.total()
    assert dict(analyzer.unsupported_ops()) == {}
    assert (total, dict(analyzer.by_operator())) == fvcore_count(model, inputs, preset)
