# tiny_segmentor.py with no custom_imports: its backbone is registered by
# `--import tests.mmseg_imported` (or --cfg-options custom_imports.imports=[...]), as VMamba's
# segmentation configs rely on `import model` in its train.py.
norm_cfg = dict(type="SyncBN", requires_grad=True)
model = dict(
    type="EncoderDecoder",
    data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    backbone=dict(type="TinyImportedBackbone", channels=16),
    decode_head=dict(type="FCNHead", in_channels=16, channels=8, num_convs=1,
                     concat_input=False, num_classes=4, norm_cfg=norm_cfg,
                     align_corners=False,
                     loss_decode=dict(type="CrossEntropyLoss", loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"))
