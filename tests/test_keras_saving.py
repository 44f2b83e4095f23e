"""Saving given values into ``.weights.h5``: bnport's store writes what Keras's own save would, without copies."""

from __future__ import annotations

import functools

import h5py
import ml_dtypes
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from models import pinned

from bnport.adapters.keras import files as keras_files
from bnport.errors import CheckpointError

DTYPES = ["float32", "float16", "bfloat16"]


@functools.cache
def model(dtype: str):
    """Conv, BatchNorm (trainable and non-trainable variables), Dense: every kind of variable a port writes."""
    import keras

    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, dtype=dtype, name="conv")(inputs)
    x = keras.layers.BatchNormalization(dtype=dtype, name="bn")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2, dtype=dtype, name="dense")(x), name=f"m_{dtype}")


def contents(path) -> dict[str, tuple]:
    """Every group and dataset with its attributes; datasets with dtype and bytes."""
    out = {}

    def visit(name, obj):
        attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
        data = (obj.dtype.str, obj.shape, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None
        out[name] = (data, attrs)

    with h5py.File(path) as f:
        out["/"] = (None, dict(f.attrs))
        f.visititems(visit)
    return out


def as_given(array: np.ndarray, form: str):
    """The forms bnport's writes hand over: an array, a strided view of one, a TensorFlow tensor."""
    if form == "strided":
        return np.ascontiguousarray(array.T).T if array.ndim > 1 else array[::-1].copy()[::-1]
    if form == "tensor":
        import tensorflow as tf

        return tf.constant(array)
    return array


@settings(max_examples=25)
@example(dtype="bfloat16", seed=0, value_dtype="bfloat16", forms=["array"] * 8)  # Keras marks bfloat16 datasets
@given(
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
    value_dtype=st.sampled_from(["float16", "float32", "float64", "bfloat16"]),
    forms=st.lists(st.sampled_from(["array", "strided", "tensor", "none"]), min_size=8, max_size=8),
)
def test_the_file_is_what_keras_writes_from_a_stateless_scope(tmp_path_factory, dtype, seed, value_dtype, forms):
    import keras

    net = model(dtype)
    assert len(net.weights) == 8
    rng = np.random.default_rng(seed)
    values = [(v, as_given(rng.standard_normal(v.shape).astype(ml_dtypes.bfloat16 if value_dtype == "bfloat16"
                                                                else value_dtype), form))
              for v, form in zip(net.weights, forms, strict=True) if form != "none"]
    tmp = tmp_path_factory.mktemp("save")
    keras_files.save(net, tmp / "bnport.weights.h5", values)
    with keras.StatelessScope(state_mapping=values):
        net.save_weights(tmp / "keras.weights.h5")
    got, want = contents(tmp / "bnport.weights.h5"), contents(tmp / "keras.weights.h5")
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name


@pytest.mark.skipif(not pinned("keras"), reason="off the pinned Keras the public save is taken (the floor leg runs it; "
                    "tests/test_compat.py forces it on the pinned one)")
def test_the_pinned_keras_has_what_the_store_relies_on():
    """Off the pinned Keras the save falls back to a stateless scope (slower, same file); here it must not."""
    assert keras_files._weights_store() is not None


def test_a_value_of_the_wrong_shape_names_the_variable(tmp_path):
    net = model("float32")
    kernel = net.get_layer("dense").kernel
    with pytest.raises(CheckpointError, match=r"dense/kernel.*\(3, 2\).*\(64, 2\)"):
        keras_files.save(net, tmp_path / "out.weights.h5", [(kernel, np.zeros((3, 2), "float32"))])
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
