"""Model families: ``build(family, depth, width, num_classes, **options)``.

Families: ``resnet`` (CIFAR ResNet, depth 6n+2), ``wrn`` (Wide ResNet, depth 6n+4), ``plain``
(VGG-style CNN, depth >= 3 conv layers). ``register(name, depth_rule=...)`` adds a user's own.
"""
from korth_bench.models._api import DepthRule, build, check, describe, names, register, valid_depths
from korth_bench.models import plain, resnet, wide_resnet  # noqa: F401  (registers the families)

__all__ = ["DepthRule", "build", "check", "describe", "names", "register", "valid_depths"]
