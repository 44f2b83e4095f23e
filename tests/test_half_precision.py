"""Half-precision models: the destination keeps its own dtype, and verify computes in float32 with a tolerance
whose rounding unit is that of the coarsest precision involved (float16 2**-11, bfloat16 2**-8)."""

from __future__ import annotations

import numpy as np
import pytest
from models import fresh, sample, torch_model

from bnport.core import tolerance
from bnport.workflows.porting import port
from bnport.workflows.verification import verify

UNIT = {"float16": 2.0**-11, "bfloat16": 2.0**-8}


def _keras_in(dtype):
    import keras

    keras.config.set_dtype_policy(dtype)
    try:
        return fresh("resnet", "keras")
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_pytorch_model_ports_exactly_and_verifies_in_float32(dtype):
    import torch

    t, k = torch_model("resnet").to(getattr(torch, dtype)), fresh("resnet", "keras")
    report = port(t, k)
    assert report.notes == [f"13 layers hold {dtype} in the source, written into the destination's float32 exactly"]
    assert k.get_layer("stem_conv").kernel.dtype == "float32"  # the destination keeps its own dtype
    r = verify(t, k, sample("resnet"))
    assert r.ok, str(r)
    assert any(f"holds {dtype}: verified as a float32 copy" in n for n in r.notes)
    assert next(t.parameters()).dtype == getattr(torch, dtype)  # the model given is left as it is


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_keras_destination_verifies_with_the_half_unit(dtype):
    t, k = torch_model("resnet"), _keras_in(dtype)
    report = port(t, k)
    assert f"rounding each value by at most {UNIT[dtype]:.3g} of itself" in report.notes[0]
    r = verify(t, k, sample("resnet"))
    assert r.ok, str(r)
    assert any(f"rounding unit {UNIT[dtype]:.3g}" in n for n in r.notes)
    # the half rounding is really there: a float32 tolerance would have failed some layer
    assert any(row.comparison.max_abs > row.tolerance * tolerance.U / UNIT[dtype] for row in r.rows)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_fault_is_still_named_at_half_precision(dtype):
    t, k = torch_model("resnet"), _keras_in(dtype)
    port(t, k)
    kernel = k.get_layer("stage2_1_conv").kernel
    kernel.assign(np.swapaxes(np.asarray(kernel), 0, 1))  # H and W swapped
    r = verify(t, k, sample("resnet"))
    assert not r.ok and r.first_divergence.torch_name == "layer2.conv1"
    assert [f.code for f in r.findings] == ["kernel-layout"]
