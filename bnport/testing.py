"""pytest helpers: ``assert_ported`` fails with the first divergence and the per-layer table."""

from __future__ import annotations

import numpy as np


def assert_ported(
    torch_model,
    keras_model,
    inputs: np.ndarray | None = None,
    mapping: object = None,
    *,
    per_layer: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
):
    """Verify through ONNX Runtime (see :func:`bnport.verify`) and raise AssertionError on any drift.

    The message names the first divergent pair, what was found about it, and the whole per-layer table.
    Returns the report when everything passes.
    """
    from bnport.workflows.verification import verify

    report = verify(torch_model, keras_model, inputs, mapping, per_layer, atol, rtol)
    if not report.ok:
        first = report.first_divergence
        if first is None:
            raise AssertionError("not every requested comparison was made:\n" + str(report))
        raise AssertionError(
            f"ported model drifts: first divergence at {first.torch_name} <-> {first.keras_name} ({first.kind})\n"
            + "".join(f"  {f}\n" for f in report.findings) + str(report)
        )
    return report
