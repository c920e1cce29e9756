"""Classifier networks by architecture name: our own (``efficientnet_lite0``, ``simple_cnn``) and
any ``torchvision.models`` architecture (``resnet18``, ``mobilenet_v3_small``...)."""

from __future__ import annotations

from torch import nn

OWN_ARCHITECTURES = ("efficientnet_lite0", "simple_cnn")


def build_classifier(arch: str, num_classes: int) -> nn.Module:
    """An untrained classifier network with ``num_classes`` outputs.

    Args:
        arch: ``"efficientnet_lite0"``, ``"simple_cnn"`` or a ``torchvision.models`` name.
        num_classes: size of the output layer.

    Returns:
        The network (random weights, train mode).

    Raises:
        ValueError: for an unknown architecture or ``num_classes`` < 1.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if arch == "efficientnet_lite0":
        from inference.nets.efficientnet_lite import EfficientNetLite0

        return EfficientNetLite0(num_classes=num_classes)
    if arch == "simple_cnn":
        from inference.nets.simple_cnn import SimpleCNN

        return SimpleCNN(num_classes=num_classes)
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"unknown classifier architecture {arch!r}: expected one of {OWN_ARCHITECTURES} "
            "or a torchvision.models classification model"
        )
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
