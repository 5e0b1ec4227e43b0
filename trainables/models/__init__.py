"""Models behind one registry; each forward returns (logits, pooled features)."""
from trainables.models import resnet_cifar, resnet_imagenet  # noqa: F401  (registration)
from trainables.models.registry import (MODELS, ModelSpec, create_model, describe_model,
                                        list_models, register_model)
from trainables.models.resnet_cifar import NormedLinear

__all__ = ["MODELS", "ModelSpec", "create_model", "describe_model", "list_models",
           "register_model", "NormedLinear"]
