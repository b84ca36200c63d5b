"""A backbone registered only when this module is imported, the way VMamba's segmentation
``model.py`` registers ``MM_VSSM`` (its configs have no ``custom_imports``; its ``train.py``
does ``import model``)."""
from mmseg.registry import MODELS

from tests.mmseg_tiny import TinyAttentionBackbone


@MODELS.register_module()
class TinyImportedBackbone(TinyAttentionBackbone):
    """:class:`tests.mmseg_tiny.TinyAttentionBackbone` under a name only ``--import`` or
    ``custom_imports`` can register."""
