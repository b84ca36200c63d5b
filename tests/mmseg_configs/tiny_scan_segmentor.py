# A segmentor whose backbone module imports selective_scan_cuda (tests/scan_model.py), registered
# by `--import tests.mmseg_scan`; counted on CPU with `--standins`.
model = dict(
    type="EncoderDecoder",
    data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    backbone=dict(type="TinyScanBackbone", channels=8),
    decode_head=dict(type="FCNHead", in_channels=8, channels=8, num_convs=0,
                     concat_input=False, num_classes=4, align_corners=False,
                     loss_decode=dict(type="CrossEntropyLoss", loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"))
