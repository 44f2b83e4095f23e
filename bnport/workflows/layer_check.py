"""``bnport.check_layer``: one PyTorch/Keras BatchNorm pair run through ONNX Runtime against a reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnport.core import layout, reference
from bnport.core.compare import Comparison, compare
from bnport.core.findings import Finding
from bnport.core.samples import batchnorm_inputs, check_inputs
from bnport.errors import IncompatibleLayerError, UnsupportedLayerError
from bnport.onnxcheck import session as runtime
from bnport.onnxcheck.reference_model import batchnorm_model


@dataclass(frozen=True)
class LayerCheck:
    """Result of :func:`check_layer`.

    Attributes:
        ok: all three comparisons passed.
        max_abs: largest |Keras - PyTorch| over the outputs (both run in ONNX Runtime).
        max_rel: largest |Keras - PyTorch| / |PyTorch|.
        worst_index: channels-first index of the element that used most of its tolerance.
        comparisons: PyTorch vs reference, Keras vs reference, Keras vs PyTorch.
        input_shape: channels-first shape of the inputs used.
        findings: when not ok, what :func:`bnport.explain` says about the pair.
    """

    ok: bool
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    comparisons: tuple[Comparison, ...]
    input_shape: tuple[int, ...]
    findings: tuple[Finding, ...] = ()

    def __str__(self) -> str:
        lines = [f"{'ok' if self.ok else 'FAILED'} on inputs of shape {list(self.input_shape)}"]
        lines += [f"  {c}" for c in self.comparisons]
        lines += [f"  {f}" for f in self.findings]
        return "\n".join(lines)


def check_layer(torch_layer, keras_layer, inputs: np.ndarray | None = None, *, seed: int = 0) -> LayerCheck:
    """Run a PyTorch BatchNorm (eval) and a Keras BatchNormalization (inference) through ONNX Runtime.

    Three ONNX models run on the same inputs: the PyTorch module exported by the legacy torch exporter
    (BatchNorm node kept), the Keras layer exported by the active Keras backend's exporter (fed channels-last when the
    layer is), and an ONNX ``BatchNormalization`` node built from the PyTorch layer's state as an independent reference.

    Tolerance (per element, derived in :func:`bnport.core.reference.float32_error_bound`):
    ``|a - b| <= 2**-20 * (|gamma| / sqrt(var + eps) * (|x| + |mean|) + |beta|)``, i.e. 16 float32 unit
    roundings of the largest magnitude the computation touches; about 1e-6 for normalized activations.

    Args:
        torch_layer: a PyTorch BatchNorm module (exported in eval mode whatever its flag).
        keras_layer: a built Keras BatchNormalization layer.
        inputs: channels-first inputs; None draws seeded inputs around the running statistics, of the Keras
            layer's built rank.
        seed: seed of the default inputs.
    """
    from bnport.adapters.keras import batchnorm as keras_bn
    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.torch import batchnorm as torch_bn
    from bnport.adapters.torch import export as torch_export

    t_spec = torch_bn.from_torch(torch_layer)
    k_spec = keras_bn.from_keras(keras_layer)
    if not t_spec.track_running_stats:
        raise UnsupportedLayerError(
            "the PyTorch layer has track_running_stats=False: it uses batch statistics even in eval, "
            "which no Keras layer does in inference"
        )
    ndim = k_spec.input_ndims[0]
    if t_spec.input_ndims and ndim not in t_spec.input_ndims:
        raise IncompatibleLayerError(
            f"the Keras layer is built for rank {ndim} but the PyTorch layer takes rank {t_spec.input_ndims}"
        )
    x = batchnorm_inputs(t_spec, ndim, seed=seed) if inputs is None else check_inputs(inputs, t_spec, (ndim,))
    channels_last = keras_bn.data_format(keras_layer) == keras_bn.CHANNELS_LAST
    (expected,) = runtime.run(batchnorm_model(t_spec, ndim), x)
    (from_torch,) = runtime.run(torch_export.export_torch(torch_layer, x), x)
    keras_x = layout.to_channels_last(x) if channels_last else x
    exported = keras_export.export_keras(keras_layer, keras_x.shape, t_spec.dtype, name=keras_layer.name)
    (from_keras,) = runtime.run(exported.model, exported.feeds(keras_x))
    if channels_last:
        from_keras = layout.to_channels_first(from_keras)
    bound = reference.float32_error_bound(x, t_spec)
    comparisons = (
        compare("pytorch vs reference", from_torch, expected, bound),
        compare("keras vs reference", from_keras, expected, bound),
        compare("keras vs pytorch", from_keras, from_torch, bound),
    )
    ok = all(c.ok for c in comparisons)
    findings: tuple[Finding, ...] = ()
    if not ok:
        from bnport.workflows.explanation import explain

        findings = explain(torch_layer, keras_layer, x).findings
    main = comparisons[2]
    return LayerCheck(ok, main.max_abs, main.max_rel, main.worst_index, comparisons, tuple(x.shape), findings)
