"""The models issue 27 names, built from configs without weights (no internet); run by
campaign.py beside this file."""


def efficientnet_b0():
    import timm

    return timm.create_model("efficientnet_b0", pretrained=False)


def convnext_tiny():
    import timm

    return timm.create_model("convnext_tiny", pretrained=False)


def vit_small():
    import timm

    return timm.create_model("vit_small_patch16_224", pretrained=False)


def swin_tiny():
    import timm

    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)


def yolo11n():
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolo11n.yaml", verbose=False)


def yolov8n():
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolov8n.yaml", verbose=False)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config())


def distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig())


def bert_base():
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig())


def whisper_tiny():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        d_model=384,
        encoder_layers=4,
        decoder_layers=4,
        encoder_attention_heads=6,
        decoder_attention_heads=6,
        encoder_ffn_dim=1536,
        decoder_ffn_dim=1536,
    )
    return WhisperForConditionalGeneration(config)


def clip():
    from transformers import CLIPConfig, CLIPModel

    return CLIPModel(CLIPConfig())


def hf_vit():
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig())


def hf_vit_small():
    """The small HF ViT of the loaded-CPU comparison (hidden 192, 6 layers)."""
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(
        ViTConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768)
    )


def fasterrcnn():
    import torchvision

    return torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None
    )


def ssdlite():
    import torchvision

    return torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
