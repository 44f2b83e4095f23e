"""``bnport.explain``: why a PyTorch BatchNorm and a Keras BatchNormalization give different outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnport.core import findings as fnd
from bnport.core.samples import batchnorm_inputs, check_inputs
from bnport.errors import UnsupportedLayerError


@dataclass(frozen=True)
class Explanation:
    """The findings for one pair of layers.

    Attributes:
        findings: every reason found, in a fixed order (mode, settings, weights, statistics).
        predicted_max_abs: the largest difference between the two layers' outputs on the inputs, computed
            in float64 from their states (None when it cannot be: different channel counts or axes).
        inputs_shape: channels-first shape of the inputs the predictions were computed on.
        notes: facts worth knowing that are no difference (both layers' statistics untrained, a Keras layer that
            was not built and is explained as built for the PyTorch layer's input).
    """

    findings: tuple[fnd.Finding, ...]
    predicted_max_abs: float | None
    inputs_shape: tuple[int, ...]
    notes: tuple[str, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        """The finding codes, in order."""
        return tuple(f.code for f in self.findings)

    def __str__(self) -> str:
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        if not self.findings:
            return "no difference found: the layers compute the same thing in inference" + notes
        total = "" if self.predicted_max_abs is None else (
            f"predicted max |difference| {self.predicted_max_abs:.4g} on inputs of shape {list(self.inputs_shape)}\n"
        )
        return total + "\n".join(str(f) for f in self.findings) + notes


class ModelExplanation(dict):
    """The explanations of two whole models' BatchNorm pairs: a dict ``{(torch_name, keras_name): Explanation}`` in
    PyTorch execution order, printed pair by pair."""

    def __str__(self) -> str:
        if not self:
            return "no BatchNorm pair: the plan paired no BatchNorm layers"
        differ = sum(1 for e in self.values() if e.findings)
        head = f"{len(self)} BatchNorm pair{'s' if len(self) != 1 else ''}, {differ} with findings"
        return head + "".join(f"\n\n{tn} <-> {kn}\n" + _indent(str(e)) for (tn, kn), e in self.items())


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def explain(
    torch_obj,
    keras_obj,
    inputs: np.ndarray | None = None,
    *,
    keras_training: bool = False,
    data_format: str | None = None,
    seed: int = 0,
) -> Explanation | ModelExplanation:
    """Say why a PyTorch BatchNorm module and a Keras BatchNormalization layer differ.

    Given two whole models instead, their BatchNorm layers are paired as :func:`bnport.plan` pairs them and
    a :class:`ModelExplanation` (a dict ``{(torch_name, keras_name): Explanation}``, in PyTorch execution order) is
    returned (``inputs`` then does not apply: each pair gets seeded inputs around its own statistics).

    Args:
        torch_obj: a ``torch.nn`` BatchNorm module, in whatever mode it is (training mode is a finding).
        keras_obj: a ``keras.layers.BatchNormalization``; one not yet built is explained as a copy of it built for
            the PyTorch layer's input (the layer given is left unbuilt), which is what it holds once built.
        inputs: channels-first inputs (N, C, ...) to size the predicted differences on; None draws seeded
            inputs around the PyTorch layer's running statistics, of the Keras layer's built rank.
        keras_training: True when the Keras layer is called with ``training=True``.
        data_format: the layout the Keras model feeds the layer; when given, a layer normalizing another
            axis is an ``axis`` finding. None accepts either.
        seed: seed of the default inputs.
    """
    from bnport.adapters.keras import batchnorm as keras_bn
    from bnport.adapters.torch import batchnorm as torch_bn

    if _is_model(torch_obj, keras_obj):
        return ModelExplanation({(tn, kn): explain(tm, kl, keras_training=keras_training, seed=seed)
                                 for tn, tm, kn, kl in batchnorm_pairs(torch_obj, keras_obj)})
    t_spec = torch_bn.from_torch(torch_obj)
    notes = []
    if not keras_obj.built:
        keras_obj = _built_copy(keras_obj, t_spec)
        notes.append(f"Keras '{keras_obj.name}' was not built: explained as built for the PyTorch layer's input "
                     f"(its weights are Keras's initial values: gamma 1, beta 0, moving mean 0, variance 1)")
    try:
        fmt = keras_bn.data_format(keras_obj)
    except UnsupportedLayerError as exc:
        return Explanation((fnd.Finding("axis", str(exc)),), None, ())
    k_spec = keras_bn.from_keras(keras_obj)
    x = _inputs(inputs, t_spec, k_spec, seed)
    t = fnd.Side(t_spec, bool(torch_obj.training), f"PyTorch {type(torch_obj).__name__}")
    k = fnd.Side(k_spec, keras_training, f"Keras '{keras_obj.name}'")
    found = fnd.diagnose(x, t, k)
    if t_spec.fresh_stats and k_spec.fresh_stats and t_spec.track_running_stats:
        notes.append("neither layer's running statistics were ever trained (mean 0, variance 1): if these are a "
                     "trained model's layers, the checkpoint was not loaded")
    if data_format is not None and fmt != data_format and x.ndim > 2:
        found.insert(0, fnd.Finding(
            "axis",
            f"Keras '{keras_obj.name}' normalizes axis {keras_obj.axis} ({fmt}) but the model feeds it "
            f"{data_format} tensors: it normalizes a spatial axis or fails on the shape.",
        ))
    return Explanation(tuple(found), fnd.predicted_total(x, t, k), tuple(x.shape), tuple(notes))


def _built_copy(layer, t_spec):
    """A built copy of an unbuilt Keras BatchNormalization, for the PyTorch layer's channels and largest rank."""
    ndim = max(t_spec.input_ndims or (4,))
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    shape = [None] + [1] * (ndim - 1)
    shape[axis] = t_spec.channels
    copy = type(layer).from_config(layer.get_config())
    copy.build(tuple(shape))
    return copy


def batchnorm_pairs(torch_model, keras_model, mapping: object = None) -> list[tuple[str, object, str, object]]:
    """The BatchNorm pairs of two models as ``bnport.plan`` pairs them: (torch name, module, keras name,
    layer), in PyTorch execution order."""
    from bnport.workflows.porting import plan

    p = plan(torch_model, keras_model, mapping)
    p.raise_for_problems(strict=False)
    tg, kg = p.torch_graph, p.keras_graph
    return [(x.torch_name, tg.nodes[x.torch_name].layer, x.keras_name, kg.nodes[x.keras_name].layer)
            for x in p.pairs if x.kind == "batchnorm"]


def _is_model(torch_obj, keras_obj) -> bool:
    import keras
    from torch.nn.modules.batchnorm import _BatchNorm

    return not isinstance(torch_obj, _BatchNorm) and not isinstance(keras_obj, keras.layers.BatchNormalization)


def _inputs(inputs, t_spec, k_spec, seed: int) -> np.ndarray:
    if inputs is not None:
        return check_inputs(inputs, t_spec, t_spec.input_ndims)
    ndim = k_spec.input_ndims[0] if k_spec.input_ndims else max(t_spec.input_ndims or (4,))
    return batchnorm_inputs(t_spec, ndim, seed=seed)
