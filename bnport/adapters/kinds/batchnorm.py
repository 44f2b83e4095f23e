"""Kind ``batchnorm``: BatchNorm1d/2d/3d, SyncBatchNorm (and the zoos' frozen and fused variants) <->
BatchNormalization. Its reading and writing live in ``adapters/torch/batchnorm.py`` and
``adapters/keras/batchnorm.py`` around :class:`bnport.core.spec.BatchNormSpec`, the richer spec bnport began with."""

from __future__ import annotations

from bnport.adapters.kinds import Definition
from bnport.core import kinds

KIND = kinds.declare(kinds.Kind("batchnorm", "BatchNorm1d/2d/3d, SyncBatchNorm", "BatchNormalization"))

DEFINITION = Definition("batchnorm")
