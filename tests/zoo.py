"""Models other people wrote, built offline for the tests: torchvision, timm, keras.applications, keras-hub.

Every model is built from its library's own definition with ``weights=None`` / ``pretrained=False`` and given
seeded trained-looking weights (He-scaled, then BatchNorm statistics measured on batches in training mode, so
mean != 0 and var != 1). keras-hub's timm converters, run offline from a folder holding ``config.json`` and
``model.safetensors`` as the hub ships them, are a second, hand-written port to check bnport's against.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from models import trained
from zoo_imports import torchvision

__all__ = ["torchvision"]

#: largest |native PyTorch - native Keras| of a correct port, relative to the output's largest magnitude. Float32
#: through 100-250 layers, each a few roundings of u = 2**-24 that add up like a random walk, measured at most
#: 2e-6 on this corpus; 2**-13 (1.2e-4) keeps a 50x margin and stays 100x below any porting mistake seen (a
#: wrong padding, stride or scale moves the output by 1e-2 or more of its magnitude).
NATIVE_RTOL = 2.0**-13


def timm():
    torchvision()
    import timm as t

    return t


def torch_trained(model, shape, seed: int = 0):
    """A zoo PyTorch model with seeded trained-looking weights, in eval mode (frozen BatchNorms get seeded
    statistics directly: training passes do not move them)."""
    import torch

    model = trained.torch_trained(model, shape, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if type(module).__name__.startswith("FrozenBatchNorm"):
                module.running_mean.copy_(0.2 * torch.randn(module.running_mean.shape, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return model.eval()


def keras_trained(model, seed: int = 0):
    """A zoo Keras model with seeded trained-looking weights."""
    return trained.keras_trained(model, seed)


def sample(shape, batch: int = 2, seed: int = 1) -> np.ndarray:
    """Seeded channels-first inputs."""
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype("float32")


def native_torch(model, x: np.ndarray) -> np.ndarray:
    """The PyTorch model run eagerly by PyTorch."""
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def native_keras(model, x: np.ndarray) -> np.ndarray:
    """The Keras model run by Keras on the channels-last inputs, returned channels-first."""
    import keras

    y = keras.ops.convert_to_numpy(model(np.ascontiguousarray(np.moveaxis(x, 1, -1)), training=False))
    return np.moveaxis(y, -1, 1) if y.ndim > 2 else y


def native_gap(torch_model, keras_model, x: np.ndarray) -> float:
    """|native PyTorch - native Keras| at its largest, relative to the PyTorch output's largest magnitude."""
    yt, yk = native_torch(torch_model, x), native_keras(keras_model, x)
    if yt.shape != yk.shape:
        return float("inf")
    return float(np.max(np.abs(yt - yk)) / np.max(np.abs(yt)))


def hub_folder(model, architecture: str, folder: Path) -> Path:
    """``model``'s weights as a hub ships a timm checkpoint: ``config.json`` and ``model.safetensors``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    config = {"architecture": architecture, "num_classes": 0, "num_features": int(model.num_features)}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def keras_hub_converter(architecture: str):
    """keras-hub's own timm converter module for an architecture."""
    from keras_hub.src.utils.timm import preset_loader

    return preset_loader.TimmPresetLoader(None, {"architecture": architecture}).converter


def keras_hub_backbone(architecture: str, image_shape=(64, 64, 3)):
    """The keras-hub backbone for a timm architecture, built as keras-hub's converter configures it (no weights)."""
    converter = keras_hub_converter(architecture)
    config = converter.convert_backbone_config({"architecture": architecture})
    shape_arg = "input_shape" if converter.backbone_cls.__name__ == "EfficientNetBackbone" else "image_shape"
    return converter.backbone_cls(**config, **{shape_arg: image_shape})


def keras_hub_ported(folder: Path):
    """The keras-hub backbone keras-hub's own converter makes of a hub folder (an independent port)."""
    import keras_hub

    return keras_hub.models.Backbone.from_preset(str(folder))


def _applications():
    import keras

    return keras.applications


def features(name: str):
    """A factory of timm's ``name`` without its head (``num_classes=0, global_pool=""``): the layout keras-hub's
    backbones end with."""
    return lambda: timm().create_model(name, pretrained=False, num_classes=0, global_pool="")


def frozen_resnet18():
    """torchvision's resnet18 as detection backbones build it (FrozenBatchNorm2d), its head removed: the layout
    keras-hub's ResNet backbone ends with."""
    from torch import nn

    tv = torchvision()
    model = tv.models.resnet18(norm_layer=tv.ops.FrozenBatchNorm2d)
    return nn.Sequential(*list(model.children())[:-2])


def mobilenetv3_features(name: str = "mobilenetv3_small_100"):
    """timm's MobileNetV3 up to its last block (``conv_stem``, ``bn1``, ``blocks``: what ``forward_features``
    runs), the layout keras-hub's MobileNet backbone ends with; timm's own modules."""
    from torch import nn

    model = timm().create_model(name, pretrained=False)
    return nn.Sequential(model.conv_stem, model.bn1, model.blocks)


def agreeing(size: int) -> dict:
    """Pairs whose definitions agree layer for layer, at ``size`` x ``size`` inputs: name -> (PyTorch factory,
    Keras factory, channels-first input shape)."""
    apps, shape, hw = _applications(), (3, size, size), (size, size, 3)
    return {
        "torchvision densenet121 / keras.applications DenseNet121": (
            lambda: torchvision().models.densenet121(),
            lambda: apps.DenseNet121(weights=None, input_shape=hw, classifier_activation=None), shape),
        "torchvision convnext_tiny / keras.applications ConvNeXtTiny": (
            lambda: torchvision().models.convnext_tiny(),
            lambda: apps.ConvNeXtTiny(weights=None, input_shape=hw, classifier_activation=None,
                                      include_preprocessing=False), shape),
        "timm tf_efficientnetv2_b0 / keras.applications EfficientNetV2B0": (
            lambda: timm().create_model("tf_efficientnetv2_b0", pretrained=False),
            lambda: apps.EfficientNetV2B0(weights=None, input_shape=hw, classifier_activation=None,
                                          include_preprocessing=False), shape),
        "timm resnet50 / keras-hub ResNet": (
            features("resnet50"), lambda: keras_hub_backbone("resnet50", hw), shape),
        "timm efficientnet_b0 / keras-hub EfficientNet": (
            features("efficientnet_b0"), lambda: keras_hub_backbone("efficientnet_b0", hw), shape),
        "timm cspresnet50 / keras-hub CSPNet": (
            features("cspresnet50"), lambda: keras_hub_backbone("cspresnet50", hw), shape),
        "torchvision resnet18 with FrozenBatchNorm2d / keras-hub ResNet": (
            frozen_resnet18, lambda: keras_hub_backbone("resnet18", hw), shape),
        "timm mobilenetv3_small_100 / keras-hub MobileNet": (
            mobilenetv3_features, lambda: keras_hub_backbone("mobilenetv3_small_100", hw), shape),
    }


def differing(size: int) -> dict:
    """Pairs whose definitions differ, at ``size`` x ``size`` inputs: name -> (PyTorch factory, Keras factory,
    channels-first input shape). What bnport must say of each is decided in tests/test_zoo.py."""
    apps, shape, hw = _applications(), (3, size, size), (size, size, 3)
    models = torchvision().models
    return {
        "torchvision resnet50 / keras.applications ResNet50": (
            models.resnet50, lambda: apps.ResNet50(weights=None, input_shape=hw, classifier_activation=None), shape),
        "torchvision mobilenet_v2 / keras.applications MobileNetV2": (
            models.mobilenet_v2, lambda: apps.MobileNetV2(weights=None, input_shape=hw, classifier_activation=None),
            shape),
        "torchvision efficientnet_b0 / keras.applications EfficientNetB0": (
            models.efficientnet_b0,
            lambda: apps.EfficientNetB0(weights=None, input_shape=hw, classifier_activation=None), shape),
        "timm densenet121 / keras-hub DenseNet": (
            features("densenet121"), lambda: keras_hub_backbone("densenet121", hw), shape),
        "torchvision densenet121 / keras.applications DenseNet121 (softmax head)": (
            models.densenet121, lambda: apps.DenseNet121(weights=None, input_shape=hw), shape),
        "torchvision vgg11_bn / keras.applications VGG16": (
            models.vgg11_bn, lambda: apps.VGG16(weights=None, input_shape=hw), shape),
        "torchvision mobilenet_v3_small / keras.applications MobileNetV3Small": (
            models.mobilenet_v3_small, lambda: apps.MobileNetV3Small(weights=None, input_shape=hw), shape),
        "torchvision inception_v3 / keras.applications InceptionV3": (
            lambda: models.inception_v3(init_weights=False, aux_logits=False),
            lambda: apps.InceptionV3(weights=None, input_shape=(max(size, 75), max(size, 75), 3)),
            (3, max(size, 75), max(size, 75))),
    }
