"""The compat modules: the pinned libraries have every private part bnport uses, and each public fallback gives what
the private path gives (run here by hiding the private part)."""

from __future__ import annotations

import inspect

import h5py
import numpy as np
import pytest
from models import keras_model, pinned, sample

from bnport.adapters.keras import export as keras_export
from bnport.adapters.keras import files as keras_files
from bnport.adapters.keras.compat import keras as keras_compat
from bnport.adapters.keras.compat import keras_ops
from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
from bnport.adapters.torch import compat as torch_compat
from bnport.errors import UnsupportedLayerError
from bnport.onnxcheck import session as runtime


@pytest.mark.skipif(not pinned("keras", "tf2onnx", "torch"), reason="checked on the pinned versions; the floor "
                    "leg runs the fallbacks (this module's other tests force each one on the pinned set)")
def test_the_pinned_libraries_have_every_private_part_bnport_uses():
    assert keras_compat.probe() is None
    assert tf2onnx_compat.probe() is None
    assert torch_compat.probe() is None


def _block(keras):
    class Block(keras.layers.Layer):  # a composite layer: sublayers held as attributes, one in a list
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(4, 3, padding="same")
            self.norms = [keras.layers.BatchNormalization(), keras.layers.BatchNormalization()]

        def call(self, x):
            return self.norms[1](self.norms[0](self.conv(x)))

    inner = keras.Sequential([keras.Input((8, 8, 3)), Block(), keras.layers.ReLU()], name="inner")
    x = keras.Input((8, 8, 3))
    return keras.Model(x, keras.layers.Dense(2)(inner(x)))


class _Hidden:
    """A layer seen without Keras's private ``_flatten_layers``: the public fallback walks it."""

    def __init__(self, layer):
        self.layers = getattr(layer, "layers", [])
        self.__dict__.update({k: v for k, v in vars(layer).items() if not k.startswith("_")})


def test_flatten_layers_public_fallback_finds_what_keras_finds(keras):
    model = _block(keras)
    def named(layers):  # input layers aside: Keras lists a Sequential's own, whose .layers does not
        return {layer.name for layer in layers if not isinstance(layer, keras.layers.InputLayer)}

    private = named(model._flatten_layers(include_self=False))
    public = named(keras_compat.flatten_layers(_Hidden(model)))
    assert public == private and len(private) == 7  # inner, Block, Conv2D, 2 BatchNorm, ReLU, Dense


def test_training_argument_public_fallback_agrees_with_kerass_record(keras):
    x, y = keras.Input((4,)), keras.Input((4,))
    out = keras.layers.Dropout(0.5)(keras.layers.Dense(4)(keras.ops.add(x, y)))
    operations = [node.operation for node in keras_compat.nodes(keras.Function([x, y], out))
                  if node.operation is not None]
    assert {type(op).__name__ for op in operations} >= {"Add", "Dense", "Dropout"}

    for op in operations:  # a call naming `training` gets it on both paths; another operation on neither
        takes = "training" in inspect.signature(op.call).parameters
        without_record = keras_compat.takes_training(type("Hidden", (), {"call": op.call})())
        assert without_record is takes, type(op).__name__
        if takes:
            assert keras_compat.takes_training(op), type(op).__name__
        elif not isinstance(op, keras.layers.Layer):
            assert not keras_compat.takes_training(op), type(op).__name__


def test_a_missing_node_list_is_a_clear_error_naming_it_and_the_keras_version(keras):
    class Bare:
        name = "odd"

    with pytest.raises(UnsupportedLayerError, match=rf"Keras {keras.__version__}: Bare 'odd' has no "
                                                    r"Operation\._inbound_nodes, which bnport needs"):
        keras_compat.inbound_nodes(Bare())


def test_the_weights_file_is_the_same_through_kerass_public_save(tmp_path, monkeypatch, keras):
    net = keras_model("resnet")
    keras_files.save(net, tmp_path / "private.weights.h5")
    monkeypatch.setattr(keras_files, "_weights_store", lambda: None)
    keras_files.save(net, tmp_path / "public.weights.h5")

    def contents(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()].tobytes())
                         if isinstance(obj, h5py.Dataset) else None)
        return out

    private, public = contents(tmp_path / "private.weights.h5"), contents(tmp_path / "public.weights.h5")
    assert private.keys() == public.keys() and len(private) > 10
    assert all(private[k] == public[k] for k in private)


def test_keras_convolution_fallback_exports_the_same_graph_numbers(monkeypatch):
    k = keras_model("resnet")
    x = np.ascontiguousarray(np.moveaxis(sample("resnet"), 1, -1))
    keras_export._CACHE.clear()
    first = keras_export.export_keras(k, x.shape)
    monkeypatch.setattr(keras_ops, "_tf_nn", lambda: None)  # a Keras without the function bnport replaces
    keras_export._CACHE.clear()
    second = keras_export.export_keras(k, x.shape)
    for a, b in zip(runtime.run(first.model, first.feeds(x)), runtime.run(second.model, second.feeds(x)),
                    strict=True):
        assert np.array_equal(a, b)  # an ungrouped convolution: Keras's own conv traces the same op


def test_torch_copies_without_foreach_give_the_same_tensors(torch):
    sources = [torch.randn(3, 4).t(), torch.randn(5), torch.randn(2, 3, 4)[:, 1]]
    fast = [torch.empty(s.shape) for s in sources]
    slow = [torch.empty(s.shape) for s in sources]
    torch_compat.copy_all(fast, sources)
    torch_compat.copy_all(slow, sources, fast=False)
    assert all(torch.equal(a, s) and torch.equal(b, s) for a, b, s in zip(fast, slow, sources, strict=True))


def test_a_store_without_kerass_entry_parts_is_left_to_kerass_own_write():
    class Store:  # what a Keras whose HDF5 store keeps its entries otherwise would hand over
        pass

    assert keras_compat.write_array(Store(), "vars/0", np.zeros(3, "float32")) is False


def test_the_keras_torch_exporter_skips_only_a_to_that_returns_its_tensor(torch):
    """``Tensor.to`` returns the tensor itself for its own dtype and device (PyTorch's documented rule, checked here
    in eager mode): only then does the export's mode skip the op; everything else reaches it."""
    from bnport.adapters.keras.exporters import torch as exporter

    x = torch.zeros(2, 3)
    same = [(torch.float32,), ("cpu",), (torch.device("cpu"),), ("cpu", torch.float32), ()]
    kw_same = [{"dtype": torch.float32}, {"device": "cpu", "non_blocking": True}]
    other = [(torch.float64,), (torch.zeros(2, dtype=torch.int64),), (torch.float32, False, True), ("meta",),
             ("not a device",), (0,)]
    kw_other = [{"dtype": torch.float32, "copy": True}, {"memory_format": torch.channels_last}]
    for args in same:
        assert exporter._no_op_to((x, *args), {}) and x.to(*args) is x, args
    for kwargs in kw_same:
        assert exporter._no_op_to((x,), kwargs) and x.to(**kwargs) is x, kwargs
    for args in other:
        assert not exporter._no_op_to((x, *args), {}), args
    for kwargs in kw_other:
        assert not exporter._no_op_to((x,), kwargs), kwargs
    assert not exporter._no_op_to((torch.nn.Parameter(x), torch.float32), {})  # a subclass's .to is its own
    with exporter.skip_no_op_to():
        assert x.to(torch.float32) is x and x.to(torch.float64).dtype == torch.float64


def _reshapes(model) -> int:
    return sum(n.op_type == "Reshape" for n in model.graph.node)


@pytest.mark.parametrize("name", ["InceptionV3", "resnet"])
def test_batchnorm_over_the_last_axis_exports_without_reshapes_and_the_same_numbers(name, monkeypatch):
    """keras.applications' InceptionV3 gives BatchNorm axis=3 (and no scale), for which Keras's TensorFlow backend
    reshapes each layer's mean, variance and offset; the fixtures give -1, for which it does not. The export without
    those reshapes computes, bit for bit, what Keras's own function gives for every tapped layer."""
    import keras

    from bnport.adapters.keras import taps as keras_taps
    from bnport.adapters.keras.graph import graph

    if name == "InceptionV3":
        model, shape = keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3)), (2, 75, 75, 3)
    else:
        model, shape = keras_model(name), np.moveaxis(sample(name), 1, -1).shape
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    given_as_three = [n for n in norms if n.axis == 3]  # as given: Keras keeps -1 as -1
    assert norms and len(given_as_three) == (len(norms) if name == "InceptionV3" else 0)
    tapped = keras_taps.tapped(model, list(graph(model).nodes))
    monkeypatch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
    fast = keras_export.export_keras(tapped, shape)
    monkeypatch.setattr(keras_ops, "_tf_batchnorm_nn", lambda: None)  # a Keras without the function replaced
    keras_export._CACHE.clear()
    slow = keras_export.export_keras(tapped, shape)
    vectors = sum(2 + n.center + n.scale for n in given_as_three)  # mean, variance, and offset, scale if present
    assert _reshapes(slow.model) - _reshapes(fast.model) == vectors
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    got, want = runtime.run(fast.model, fast.feeds(x)), runtime.run(slow.model, slow.feeds(x))
    assert len(got) == len(want) > len(norms)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_only_an_axis_that_is_the_last_is_passed_on_as_minus_one():
    import tensorflow as tf

    received = []
    replaced = keras_ops._last_axis_as_minus_one(lambda x, m, v, axis, o, s, e: received.append(axis))

    @tf.function(input_signature=[tf.TensorSpec((None, 4, 4, 3)), tf.TensorSpec(None)])
    def trace(x, unranked):
        vector = tf.zeros(3)
        for axis in (3, -1, 1, 0):
            replaced(x, vector, vector, axis)
        replaced(unranked, vector, vector, 3)  # rank unknown: Keras's own function decides
        return x

    trace.get_concrete_function()
    assert received == [-1, -1, 1, 0, 3]


def test_on_torch_only_the_vectors_reshapes_for_a_last_axis_return_the_vectors():
    """The torch backend's replacement: inside Keras's function, the reshapes of the BatchNorm vectors to
    ``[1, ..., 1, C]`` return the vectors themselves for a last axis (-1 or rank - 1); any other reshape, and every
    reshape for another axis, is PyTorch's own."""
    import torch

    seen = []

    def keras_like(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
        shape = [1] * x.ndim
        shape[axis] = mean.shape[0]
        other = torch.arange(3.0)
        seen.append([torch.reshape(mean, shape) is mean, torch.reshape(variance, shape) is variance,
                     tuple(torch.reshape(other, shape).shape), tuple(torch.reshape(x, (-1,)).shape),
                     tuple(torch.reshape(mean, [3]).shape) == (3,), tuple(mean.reshape(shape).shape)])

    replaced = keras_ops._vectors_kept_torch(keras_like)
    x, vector = torch.zeros(2, 3, 4, 3), torch.ones(3)
    for axis in (3, -1, 1):
        replaced(x, vector, vector + 1, axis)
    lasts = [True, True, (1, 1, 1, 3), (72,), True, (1, 1, 1, 3)]  # a method call is not torch.reshape: unchanged
    assert seen == [lasts, lasts, [False, False, (1, 3, 1, 1), (72,), True, (1, 3, 1, 1)]]
    assert tuple(torch.reshape(vector, [1, 1, 1, 3]).shape) == (1, 1, 1, 3)  # the mode is gone
    with pytest.raises(RuntimeError):  # a reshape that cannot be done still fails inside the function
        keras_ops._vectors_kept_torch(lambda x, m, *rest: torch.reshape(x, [1, 1, 1, 5]))(x, vector, vector, -1)


def test_tensorflow_feeds_are_views_of_the_variables_that_keep_their_values():
    """The TensorFlow exporter feeds each Keras weight as a view of the tensor TensorFlow reads it into (no copy: two
    reads share one buffer), in the variable's dtype; a scalar is a 0-d array; an assignment made while
    a view lives leaves the view's values as they were read."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow exporter's feeds")
    from bnport.adapters.keras.exporters import tensorflow as exporter

    values = {"float32": np.arange(6, dtype="float32").reshape(2, 3), "float16": np.full((4,), 1.5, "float16"),
              "bfloat16": np.ones((3,), "float32"), "int64": np.array(7, "int64")}
    for dtype, value in values.items():
        variable = keras.Variable(value, dtype=dtype, trainable=False)
        view = exporter.value_array(variable)
        assert view.dtype.name == dtype and view.shape == value.shape and isinstance(view, np.ndarray), dtype
        assert np.shares_memory(view, exporter.value_array(variable)), dtype
        before = view.astype("float64")
        assert np.array_equal(before, value.astype("float64"))
        variable.assign(np.zeros(value.shape, dtype) if dtype != "bfloat16" else np.zeros(value.shape, "float32"))
        assert np.array_equal(view.astype("float64"), before), dtype
        assert not exporter.value_array(variable).astype("float64").any(), dtype


@pytest.mark.backends
@pytest.mark.parametrize("name", ["resnet", "mobilenet", "conv3d", "mlp"])
def test_variable_shapes_read_from_kerass_record_are_the_public_shapes(name, keras):
    model = keras_model(name)
    scalar = keras.Variable(np.float32(2.0))  # rank 0
    for variable in [*model.weights, scalar]:
        got = keras_compat.variable_shape(variable)
        assert type(got) is tuple and got == tuple(variable.shape), variable.path
        assert all(type(d) is int for d in got)


def test_variable_shapes_fall_back_to_the_public_shape_without_kerass_record():
    class Public:  # a variable seen without Keras's private ``_shape``
        shape = np.zeros((2, 3, 4)).shape

    assert keras_compat.variable_shape(Public()) == (2, 3, 4)
    odd = Public()
    odd._shape = [2, 3, 4]  # not Keras's tuple: not trusted
    assert keras_compat.variable_shape(odd) == (2, 3, 4)
