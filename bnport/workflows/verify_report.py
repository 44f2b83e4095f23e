"""The result of ``bnport.verify``: one row per compared pair, the verdict, and what was found and compared."""

from __future__ import annotations

from dataclasses import dataclass, field

from bnport.core.compare import Comparison
from bnport.core.findings import Finding


@dataclass(frozen=True)
class Row:
    """One compared pair."""

    torch_name: str
    keras_name: str
    kind: str
    comparison: Comparison
    tolerance: float
    findings: tuple[Finding, ...] = ()

    @property
    def passed(self) -> bool:
        """Within tolerance (both sides compared as exported: PyTorch in eval mode, Keras in inference)."""
        return self.comparison.ok

    def as_dict(self) -> dict:
        """The row in the JSON report's schema."""
        c = self.comparison
        return {"torch_name": self.torch_name, "keras_name": self.keras_name, "kind": self.kind,
                "max_abs": _num(c.max_abs), "max_rel": _num(c.max_rel), "tolerance": self.tolerance,
                "passed": self.passed, "worst_index": list(c.worst_index), "detail": c.detail,
                "findings": [f.as_dict() for f in self.findings]}


def _num(x: float) -> float | None:
    return None if x != x else (x if abs(x) != float("inf") else None)


@dataclass
class VerifyReport:
    """Result of :func:`verify`.

    Attributes:
        ok: every requested comparison was made and passed (each pair when ``per_layer``, and the outputs).
        rows: one per compared pair, in PyTorch execution order.
        final: the model outputs compared.
        first_divergence: the first failing row, or None.
        findings: what ``explain``-style checks say about the first divergence (the headline).
        faults: every failing pair whose own weights or settings explain it (each row's ``findings``), the first
            divergence included when it is one: all faulty layers in one run. A failing pair that is not listed
            agrees in itself: it fails on what an earlier layer or a weightless operation gave it.
        not_compared: requested comparisons that were not made, each ``"torch <-> keras: reason"``; any makes the
            report not ok (with ``per_layer=True``, a plan without a single pair is one).
        unpaired: weight-holding layers of either model that no pair covers, each with the reason (the final
            outputs still compare what they compute).
        notes: how the comparison was made where it is not the plain float32 one (a float32 copy of a half-precision
            model, a tolerance unit for half precision).
        warnings: what the comparison could not show and a user must know: a PyTorch model left in training mode
            (verified in eval mode, as exported; run as it is, it computes something else). No effect on ``ok``.
        input_shape: channels-first shape of the (first) input.
        input_shapes: channels-first shape of each input, in the Keras model's input order.
        compared: what was compared, for a reader of the report: ``torch_model`` and ``keras_model`` (class and
            name), ``keras_backend``, ``input_shapes``, ``versions`` of the packages involved, and ``files`` when the
            models came from files (the CLI fills it in: option -> path).
        seconds: time of each stage (``export_torch``, ``export_keras``, ``onnxruntime``) and the ``total``
            wall time; the PyTorch graph runs in onnxruntime while the Keras model is exported, so the stages
            may add up to more than the total.
    """

    ok: bool
    rows: list[Row]
    final: list[Row]
    first_divergence: Row | None
    findings: tuple[Finding, ...]
    not_compared: list[str] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    compared: dict = field(default_factory=dict)

    @property
    def faults(self) -> list[Row]:
        """The failing pairs with a cause of their own (see the class docstring)."""
        return [r for r in self.rows if not r.passed and r.findings]

    def as_dict(self) -> dict:
        """The JSON report (schema: ``bnport/schemas/verify-report.schema.json``)."""
        first = self.first_divergence
        return {
            "schema": "bnport-verify-report/1",
            "ok": self.ok,
            "input_shape": list(self.input_shape),
            "input_shapes": [list(shape) for shape in self.input_shapes],
            "pairs": [r.as_dict() for r in self.rows],
            "final": [r.as_dict() for r in self.final],
            "first_divergence": None if first is None else {"torch_name": first.torch_name,
                                                              "keras_name": first.keras_name, "kind": first.kind},
            "findings": [f.as_dict() for f in self.findings],
            "faults": [{"torch_name": r.torch_name, "keras_name": r.keras_name, "kind": r.kind} for r in self.faults],
            "not_compared": self.not_compared,
            "unpaired": self.unpaired,
            "notes": self.notes,
            "warnings": self.warnings,
            "seconds": self.seconds,
            "compared": self.compared,
        }

    def __str__(self) -> str:
        from bnport.reports.writers import table

        return table(self)
