"""Runtime helpers the engines stand on: the meta device (:mod:`.meta`: shapes without arithmetic,
big models without memory) and the Mamba stand-in kernels (:mod:`.standins`: mamba-ssm,
causal-conv1d and VMamba's CUDA extensions replaced by reference code on a CPU machine).
Imports torch only.
"""
