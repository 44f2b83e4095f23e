"""Why two BatchNorm layers differ: findings computed from two specs (numpy only).

Each finding has a stable ``code`` (scripts may match on it), a plain sentence, and, where it can be
computed, the size of the difference that factor alone causes: the largest ``|torch - torch'|`` on the
inputs, where ``torch'`` is the torch side's computation with only that factor taken from the Keras side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnport.core import reference
from bnport.core.spec import BatchNormSpec

CODES = (
    "train-mode",
    "epsilon",
    "momentum",
    "axis",
    "affine",
    "stats-untracked",
    "fresh-stats",
    "weights",
    "stats",
    "dtype",
    # from bnport.verify, about whole models
    "kernel-layout",
    "flatten-order",
    "same-padding",
    "padding",
    "preprocessing",
    "conflict",
    "activation",
    "upstream",
    "output",
)


@dataclass(frozen=True)
class Finding:
    """One reason two layers compute different things.

    Attributes:
        code: one of :data:`CODES`.
        message: a plain sentence naming the values involved.
        predicted_max_abs: the largest output difference this factor alone causes on the inputs, or None
            when it cannot be computed (e.g. different channel counts).
    """

    code: str
    message: str
    predicted_max_abs: float | None = None

    def __str__(self) -> str:
        size = "" if self.predicted_max_abs is None else f" (predicted max |difference| {self.predicted_max_abs:.4g})"
        return f"[{self.code}] {self.message}{size}"

    def as_dict(self) -> dict:
        """The finding in the JSON report's schema."""
        return {"code": self.code, "message": self.message, "predicted_max_abs": self.predicted_max_abs}


@dataclass(frozen=True)
class Side:
    """What one framework's layer computes: its spec and whether it normalizes with batch statistics."""

    spec: BatchNormSpec
    training: bool
    name: str


def _out(x: np.ndarray, spec: BatchNormSpec, training: bool) -> np.ndarray:
    return reference.batchnorm(x, spec, training=training)


def _delta(x: np.ndarray, a: tuple[BatchNormSpec, bool], b: tuple[BatchNormSpec, bool]) -> float:
    return float(np.max(np.abs(_out(x, *a) - _out(x, *b)), initial=0.0))


def _mode_findings(x: np.ndarray, t: Side, k: Side) -> list[Finding]:
    found = []
    if t.spec.track_running_stats and t.training and not k.training:
        found.append(Finding(
            "train-mode",
            f"{t.name} is in training mode, so it normalizes with the statistics of each batch; Keras "
            "inference uses the moving statistics. Each forward pass in training mode also overwrites the running "
            "statistics (running = (1 - momentum) * running + momentum * batch): call .eval() before the first "
            "forward pass, and reload the checkpoint if the model already ran in training mode.",
            _delta(x, (t.spec, True), (t.spec, False)),
        ))
    if k.training and not t.training:
        found.append(Finding(
            "train-mode",
            f"{k.name} was called with training=True, so it normalizes with batch statistics while the "
            "PyTorch module in eval uses its running statistics; call the Keras layer with training=False.",
            _delta(x, (k.spec, True), (k.spec, False)),
        ))
    if not t.spec.track_running_stats:
        replaced = t.spec.replace(running_mean=k.spec.running_mean, running_var=k.spec.running_var)
        found.append(Finding(
            "stats-untracked",
            f"{t.name} has track_running_stats=False: it normalizes with batch statistics even in eval, "
            "which Keras inference never does; no Keras layer computes the same thing.",
            _delta(x, (t.spec, True), (replaced, False)),
        ))
    return found


def _vector_findings(x: np.ndarray, t: Side, k: Side, training: bool) -> list[Finding]:
    found = []
    for field, flag in (("gamma", "scale"), ("beta", "center")):
        tv, kv = getattr(t.spec, field), getattr(k.spec, field)
        replaced = t.spec.replace(**{field: kv})
        if (tv is None) != (kv is None):
            has, lacks = (t, k) if kv is None else (k, t)
            found.append(Finding(
                "affine",
                f"{has.name} has {field} ({flag}) but {lacks.name} has none "
                f"(PyTorch affine={t.spec.scale or t.spec.center}, Keras scale={k.spec.scale}, "
                f"center={k.spec.center}).",
                _delta(x, (t.spec, training), (replaced, training)),
            ))
        elif tv is not None and not np.array_equal(tv, kv):
            found.append(_value_finding("weights", field, tv, kv, _delta(x, (t.spec, training), (replaced, training))))
    if t.spec.track_running_stats and not training:
        found.extend(_stats_findings(x, t, k))
    return found


def _stats_findings(x: np.ndarray, t: Side, k: Side) -> list[Finding]:
    replaced = t.spec.replace(running_mean=k.spec.running_mean, running_var=k.spec.running_var)
    delta = _delta(x, (t.spec, False), (replaced, False))
    if t.spec.fresh_stats and k.spec.fresh_stats:  # the same statistics: no difference (explain notes it)
        return []
    if t.spec.fresh_stats != k.spec.fresh_stats:
        fresh = t if t.spec.fresh_stats else k
        return [Finding(
            "fresh-stats",
            f"{fresh.name} has untrained running statistics (mean 0, variance 1) while the other side's are "
            "trained: its weights were probably never loaded or ported.",
            delta,
        )]
    found = []
    for field in ("running_mean", "running_var"):
        tv, kv = getattr(t.spec, field), getattr(k.spec, field)
        if not np.array_equal(tv, kv):
            found.append(_value_finding("stats", field, tv, kv, delta))
    return found


def _value_finding(code: str, field: str, tv: np.ndarray, kv: np.ndarray, delta: float) -> Finding:
    differ = tv != kv
    gap = np.abs(tv.astype(np.float64) - kv.astype(np.float64))
    worst = int(np.argmax(gap))
    return Finding(
        code,
        f"{field} differs in {int(differ.sum())} of {differ.size} channels (largest difference "
        f"{gap[worst]:.4g} at channel {worst}: PyTorch {tv[worst]:.6g}, Keras {kv[worst]:.6g}).",
        delta,
    )


def _setting_findings(x: np.ndarray, t: Side, k: Side, training: bool) -> list[Finding]:
    found = []
    if t.spec.epsilon != k.spec.epsilon:
        found.append(Finding(
            "epsilon",
            f"epsilon differs: PyTorch {t.spec.epsilon:g}, Keras {k.spec.epsilon:g} (defaults are 1e-5 and "
            "1e-3); the port must carry the source's epsilon.",
            _delta(x, (t.spec, training), (t.spec.replace(epsilon=k.spec.epsilon), training)),
        ))
    if t.spec.momentum != k.spec.momentum:
        if t.spec.momentum is None:
            said = "PyTorch momentum=None (cumulative average) has no fixed Keras equivalent"
        else:
            said = f"PyTorch momentum {t.spec.torch_momentum:g} means Keras {t.spec.momentum:g} (keras = 1 - torch)"
        found.append(Finding(
            "momentum",
            f"momentum differs: {said}, but Keras has {k.spec.momentum:g}. Inference is unaffected; "
            "further training is not.",
            0.0,
        ))
    if t.spec.dtype != k.spec.dtype:
        found.append(Finding("dtype", f"dtype differs: PyTorch {t.spec.dtype}, Keras {k.spec.dtype}."))
    return found


def diagnose(x: np.ndarray, t: Side, k: Side) -> list[Finding]:
    """Every finding for the pair, on channels-first inputs ``x``, in a fixed order."""
    if t.spec.channels != k.spec.channels:
        return [Finding(
            "axis",
            f"the layers normalize different channel counts: PyTorch {t.spec.channels}, Keras "
            f"{k.spec.channels}; the Keras layer's axis may point at a spatial axis, or the layers are not a pair.",
        )]
    training = t.training and t.spec.track_running_stats
    found = _mode_findings(x, t, k)
    found += _setting_findings(x, t, k, training)
    found += _vector_findings(x, t, k, training)
    return found


def predicted_total(x: np.ndarray, t: Side, k: Side) -> float | None:
    """Largest difference between the two layers' outputs on ``x`` (None when channel counts differ)."""
    if t.spec.channels != k.spec.channels or not k.spec.track_running_stats:
        return None
    return _delta(x, (t.spec, t.training or not t.spec.track_running_stats), (k.spec, k.training))
