"""mmsegmentation and mmengine: the ``get_flops`` drop-in (:mod:`.get_flops`), the runner for
unmodified scripts (:mod:`.run`) and mmengine's ``FlopAnalyzer`` with the pack's handles
(:mod:`.mmengine_analysis`).

An integration: imports the engines and the op table, never another integration or the tools.
"""
