"""A user's own analysis script: builds a segmentor from a config and calls mmengine's
``get_model_complexity_info`` itself (both import paths) and a ``FlopAnalyzer``, printing the
raw counts. ``tests/test_run_script.py`` runs it with ``python -m fvcore_ext.run``."""
import argparse

import torch
from mmengine import Config
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info, print_helper
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

parser = argparse.ArgumentParser()
parser.add_argument("config")
parser.add_argument("--shape", type=int, nargs=2, default=[32, 32])
args = parser.parse_args()

cfg = Config.fromfile(args.config)
init_default_scope("mmseg")
model = MODELS.build(cfg.model)
model.auxiliary_head = None
model = revert_sync_batchnorm(model).eval()
x = torch.rand(1, 3, *args.shape)

info = get_model_complexity_info(model, inputs=(x,), show_table=False, show_arch=False)
print(f"inputs: flops {info['flops']} ({info['flops_str']}), params {info['params']}")
info = print_helper.get_model_complexity_info(model, input_shape=(3, *args.shape),
                                              show_table=False, show_arch=False)
print(f"input_shape: flops {info['flops']} ({info['flops_str']}), params {info['params']}")
analyzer = FlopAnalyzer(model, (x,))
analyzer.unsupported_ops_warnings(False)
analyzer.uncalled_modules_warnings(False)
print(f"FlopAnalyzer: {analyzer.total()}")
