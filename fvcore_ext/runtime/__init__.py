"""Runtime helpers the engines stand on: the meta device (:mod:`.meta`: shapes without arithmetic,
big models without memory), the Mamba stand-in kernels (:mod:`.standins`: mamba-ssm,
causal-conv1d and VMamba's CUDA extensions replaced by reference code on a CPU machine) and
writing to a stdout the reader may close early (:mod:`.stdout`).
Imports torch only.
"""
