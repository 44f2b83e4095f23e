"""Keras on every backend, seen from outside: each check runs bnport in a fresh process with KERAS_BACKEND set (as a
user would), TensorFlow and tf2onnx unimportable off the TensorFlow backend (tests/without_tensorflow).

The rest of the backend coverage is the `backends` set that scripts/test runs on jax and torch (conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
ARCH = FIXTURES / "architectures.py"
BLOCKER = str(Path(__file__).parent / "without_tensorflow")
BACKENDS = ("tensorflow", "jax", "torch")

pytestmark = pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                                reason="starts a process per backend itself; run once, from the TensorFlow leg")


def run(backend: str, code: str, *, block_tensorflow: bool | None = None, timeout: int = 300):
    """``code`` in a fresh interpreter on Keras ``backend``; TensorFlow unimportable off its backend (by default)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    if block_tensorflow if block_tensorflow is not None else backend != "tensorflow":
        env["PYTHONPATH"] = BLOCKER
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)


WRITE = """
import sys, numpy as np, keras
sys.path.insert(0, {fixtures!r})
from architectures import keras_resnet
m = keras_resnet()
rng = np.random.default_rng(7)
for v in m.weights:  # trained-looking: kernels scaled by their fan-in, variances positive
    value = rng.standard_normal(tuple(v.shape)).astype("float32")
    if len(v.shape) > 1:
        value = value / np.float32(np.sqrt(np.prod(v.shape[:-1])))
    v.assign(np.abs(value) + 0.5 if "variance" in v.path else value)
m.save({out!r} + "/model.keras")
m.save_weights({out!r} + "/model.weights.h5")
np.savez({out!r} + "/values.npz", *[keras.ops.convert_to_numpy(v.value) for v in m.weights])
x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype("float32")
np.save({out!r} + "/y.npy", keras.ops.convert_to_numpy(m(x, training=False)))
print("backend", keras.backend.backend())
"""

READ = """
import sys, numpy as np, keras
sys.path.insert(0, {fixtures!r})
from architectures import keras_resnet
from bnport.adapters.keras import files
x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype("float32")
for folder in {folders!r}:
    want = np.load(folder + "/values.npz")
    want = [want[k] for k in want.files]
    archive = files.load_model(folder + "/model.keras")
    weights = keras_resnet()
    files.load_weights(weights, folder + "/model.weights.h5")
    for model in (archive, weights):
        got = [keras.ops.convert_to_numpy(v.value) for v in model.weights]
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), folder
        y = keras.ops.convert_to_numpy(model(x, training=False))
        want_y = np.load(folder + "/y.npy")
        # the values are the same bits; the backends' float32 kernels sum in other orders: a few hundred roundings
        # of the output's scale at most through this small ResNet (144-term convolutions, 5 of them in a row)
        bound = 1e-4 * max(1.0, float(np.abs(want_y).max()))
        assert np.abs(y - want_y).max() <= bound, (folder, np.abs(y - want_y).max(), bound)
print("read", keras.backend.backend(), sys.modules.get("tensorflow") is not None)
"""


def test_keras_files_written_on_each_backend_load_on_every_other(tmp_path):
    """A .keras archive and a .weights.h5 file written on each backend load, bit for bit, on all three, and compute
    what they computed where they were written (within 1e-4 of the output's scale: float32 kernels summing in other
    orders)."""
    folders = []
    for backend in BACKENDS:
        out = tmp_path / backend
        out.mkdir()
        done = run(backend, WRITE.format(fixtures=str(FIXTURES), out=str(out)))
        assert done.returncode == 0 and f"backend {backend}" in done.stdout, done.stderr[-3000:]
        folders.append(str(out))
    for backend in BACKENDS:
        done = run(backend, READ.format(fixtures=str(FIXTURES), folders=folders))
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"read {backend} {backend == 'tensorflow'}" in done.stdout


CONVERT = """
import sys
from bnport.cli.main import main
rc = main({argv!r})
print("RC", rc, "TF", "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("dst", ["resnet.weights.h5", "resnet.keras"])
def test_convert_and_verify_on_the_torch_backend_never_import_tensorflow_even_when_installed(tmp_path, dst):
    argv = ["convert", str(FIXTURES / "resnet.pt"), str(tmp_path / dst), "--torch-model", f"{ARCH}:torch_resnet",
            "--keras-model", f"{ARCH}:keras_resnet", "--verify", "--json", str(tmp_path / "r.json")]
    done = run("torch", CONVERT.format(argv=argv), block_tensorflow=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RC 0 TF False" in done.stdout and "ok: 13 layers and 1 output within tolerance" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is True


def test_convert_verify_exits_1_when_the_written_file_drifts(tmp_path):
    """--verify checks the file written, against the source: a Keras definition whose first ReLU clips at 0.5 (the
    weights port exactly; the model computes something else) drifts."""
    factory = tmp_path / "clipped.py"
    factory.write_text(f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\nimport keras\n"
                       "from architectures import keras_resnet\n"
                       "def keras_resnet_clipped():\n    m = keras_resnet()\n"
                       "    next(l for l in m.layers if isinstance(l, keras.layers.ReLU)).max_value = 0.5\n"
                       "    return m\n")
    argv = ["convert", str(FIXTURES / "resnet.pt"), str(tmp_path / "r.weights.h5"), "--torch-model",
            f"{ARCH}:torch_resnet", "--keras-model", f"{factory}:keras_resnet_clipped", "--verify"]
    done = run("torch", CONVERT.format(argv=argv))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RC 1" in done.stdout and "DRIFT" in done.stdout


MISSING = """
from bnport.cli.main import main
raise SystemExit(main({argv!r}))
"""


def test_a_missing_exporter_or_backend_names_the_extra_to_install(tmp_path):
    argv = ["verify", "--torch-model", f"{ARCH}:torch_resnet", "--torch-weights", str(FIXTURES / "resnet.pt"),
            "--keras-model", f"{ARCH}:keras_resnet", "--keras-weights", str(FIXTURES / "resnet.weights.h5"),
            "--keras-backend", "tensorflow"]
    done = run("torch", MISSING.format(argv=argv), block_tensorflow=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "pip install 'bnport[tensorflow]'" in done.stderr
    code = ("import sys; sys.modules['jax2onnx'] = None\n"
            "import numpy as np, keras\nfrom bnport.adapters.keras import export\n"
            "x = keras.Input((4,)); m = keras.Model(x, keras.layers.Dense(2)(x))\n"
            "try:\n    export.export_keras(m, (2, 4))\nexcept ImportError as e:\n    print(type(e).__name__, e)\n")
    done = run("jax", code)
    assert "MissingExporterError" in done.stdout and "pip install 'bnport[jax]'" in done.stdout, done.stderr[-2000:]


def test_with_no_backend_configured_and_no_tensorflow_the_cli_runs_on_torch_and_says_so(tmp_path):
    env_home = tmp_path / "home"  # no keras.json there
    argv = ["inspect", str(FIXTURES / "mlp.keras")]
    code = ("import os\nos.environ.pop('KERAS_BACKEND', None)\n"
            f"os.environ['KERAS_HOME'] = {str(env_home)!r}\n" + CONVERT.format(argv=argv) +
            "import keras\nprint('BACKEND', keras.backend.backend())\n")
    done = run("torch", code, block_tensorflow=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RC 0" in done.stdout and "BACKEND torch" in done.stdout
    assert "Keras backend: torch (no backend is configured" in done.stderr


def test_framework_detection_on_the_torch_backend():
    """Every Keras layer is a torch.nn.Module there: a Keras model is still Keras, and a PyTorch module wrapped in
    Keras's TorchModuleWrapper is refused with what it is."""
    code = ("import torch, keras\nfrom bnport.core.frameworks import framework_of\n"
            "from bnport.errors import UsageError\n"
            "k = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
            "assert isinstance(k, torch.nn.Module)\n"
            "print('KERAS', framework_of(k), 'TORCH', framework_of(torch.nn.Linear(3, 2)))\n"
            "w = keras.layers.TorchModuleWrapper(torch.nn.Linear(3, 2))\n"
            "try:\n    framework_of(w)\nexcept UsageError as e:\n    print('REFUSED', e)\n")
    done = run("torch", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "KERAS keras TORCH torch" in done.stdout
    assert "REFUSED" in done.stdout and "TorchModuleWrapper around the PyTorch module torch.nn.modules.linear.Linear" \
        in done.stdout


def test_the_jax2onnx_fast_path_gives_the_public_paths_graph():
    """bnport imports only jax2onnx's JAX plugins for its conversions and answers its output check through each
    value's producer: the same nodes and the same numbers as jax2onnx's public path (every plugin imported, the
    full check), on the bundled ResNet twin; both attributes are jax2onnx's own again afterwards."""
    code = f"""
import sys, numpy as np
sys.path.insert(0, {str(FIXTURES)!r})
from architectures import keras_resnet
from bnport.adapters.keras import export
from bnport.adapters.keras.compat import jax2onnx as compat
from bnport.onnxcheck import session
import jax2onnx.converter.conversion_api as api, jax2onnx.converter.output_binding as ob
plugins, connected = api.import_all_plugins, ob._value_is_graph_connected
assert compat.probe() is None, compat.probe()
m = keras_resnet()
x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
fast = export.export_keras(m, x.shape)
export._CACHE.clear()
compat.FAST = False
slow = export.export_keras(m, x.shape)
assert [n.op_type for n in fast.model.graph.node] == [n.op_type for n in slow.model.graph.node]
a, b = session.run(fast.model, fast.feeds(x)), session.run(slow.model, slow.feeds(x))
assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
import jax2onnx.converter.conversion_api as api, jax2onnx.converter.output_binding as ob
assert api.import_all_plugins is plugins and ob._value_is_graph_connected is connected, "left replaced"
print("SAME", len(fast.model.graph.node))
"""
    done = run("jax", code)
    assert done.returncode == 0 and "SAME" in done.stdout, done.stderr[-3000:]


def test_the_output_check_answers_from_the_producer_only_for_a_node_of_the_graph():
    """A value produced by a node of the builder's graph is connected; a graph input, a value of a node outside the
    graph and a value without producer get jax2onnx's own check (here: inputs yes, the others no)."""
    ir = pytest.importorskip("onnx_ir")
    output_binding = pytest.importorskip("jax2onnx.converter.output_binding")
    from bnport.adapters.keras.compat import jax2onnx as compat

    graph = ir.Graph(inputs=[ir.Value(name="x")], outputs=[], nodes=[], name="g")
    inside = ir.Node("", "Relu", inputs=[graph.inputs[0]])
    graph.append(inside)
    outside = ir.Node("", "Relu", inputs=[graph.inputs[0]])

    class Builder:
        def __init__(self, graph):
            self.graph, self.nodes, self.inputs, self.initializers = graph, graph, graph.inputs, []

    class Ctx:
        builder = Builder(graph)

    asked = []
    check = compat._connected_through_producer(lambda ctx, v: asked.append(v.name) or
                                               output_binding._value_is_graph_connected(ctx, v))
    assert check(Ctx, inside.outputs[0]) and asked == []
    assert check(Ctx, graph.inputs[0]) and asked == ["x"]
    assert not check(Ctx, outside.outputs[0]) and not check(Ctx, ir.Value(name="loose"))
    assert len(asked) == 3


def test_the_producer_lookup_gives_the_originals_answer_and_asks_it_only_for_names_and_other_sequences():
    """For a value in a list of nodes, bnport's lookup answers itself, with jax2onnx's own answer in every case: the
    producer in the list, a producer outside it or none (a graph input) whose name another node's output has (the
    original's name scan finds that node), a name no output has, an unnamed value; a name or a tuple of nodes is
    passed to the original."""
    ir = pytest.importorskip("onnx_ir")
    graph_utils = pytest.importorskip("jax2onnx.converter.optimizer_graph_utils")
    from bnport.adapters.keras.compat import jax2onnx as compat

    x, unnamed = ir.Value(name="x"), ir.Value()
    first, second = ir.Node("", "Relu", inputs=[x]), ir.Node("", "Neg", inputs=[x])
    first.outputs[0].name, second.outputs[0].name = "y", "x"  # second's output shares the input's name
    outside = ir.Node("", "Abs", inputs=[x])
    outside.outputs[0].name = "y"
    asked = []
    lookup = compat._producer_in_list(lambda nodes, v: asked.append(v) or graph_utils._producer_node(nodes, v))
    cases = [([second, first], first.outputs[0]), ([second], first.outputs[0]), ([first, second], x),
             ([first], x), ([second, first], outside.outputs[0]), ([first], outside.outputs[0]),
             ([first, second], unnamed), ([], x)]
    for nodes, value in cases:
        assert lookup(nodes, value) is graph_utils._producer_node(nodes, value), (nodes, value)
    assert [lookup([first, second], x), lookup([second], first.outputs[0]), lookup([first], outside.outputs[0])] \
        == [second, None, first]  # by name, where the producer is not in the list
    assert asked == []
    assert lookup([first, second], "y") is first and lookup((first, second), x) is second
    assert len(asked) == 2


def test_the_torch_backends_keras_graph_leaves_out_no_op_casts_and_computes_the_same():
    """Keras converts each variable on every read (``x.to(device)``, ``x.to(dtype)``): bnport's export on the torch
    backend leaves those no-ops out of the trace (no float casts are left: the exporter's own int64 shape casts
    stay), and the graph computes exactly what the one traced with them does. The mode is gone afterwards (a trace
    records ``.to`` again)."""
    code = f"""
import contextlib, sys, numpy as np, onnx, torch
sys.path.insert(0, {str(FIXTURES)!r})
from architectures import keras_resnet
from bnport.adapters.keras import export
from bnport.adapters.keras.exporters import torch as exporter
from bnport.onnxcheck import session
m = keras_resnet()
x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
lean = export.export_keras(m, x.shape)
export._CACHE.clear()
exporter.skip_no_op_to = contextlib.nullcontext
full = export.export_keras(m, x.shape)
casts = [sum(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT for n in g.model.graph.node)
         for g in (lean, full)]
# the graph traced with the casts is valid (onnx's full check), but onnxruntime 1.32's CastElimination makes an
# invalid graph of its chains of no-op Casts ("not a graph input, initializer, or output of a previous node"): that
# optimizer is left out for it (bnport's own graph has no such Cast)
onnx.checker.check_model(full.model, full_check=True)
import onnxruntime
with_casts = onnxruntime.InferenceSession(full.model.SerializeToString(), providers=["CPUExecutionProvider"],
                                          disabled_optimizers=["CastElimination"])
a, b = session.run(lean.model, lean.feeds(x)), with_casts.run(None, full.feeds(x))
assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
traced = torch.jit.trace(lambda t: t.to(torch.float32) + 1, torch.zeros(2))
print("CASTS", *casts, "NODES", len(lean.model.graph.node), len(full.model.graph.node),
      "AFTER", sum(n.kind() == "aten::to" for n in traced.graph.nodes()))
"""
    done = run("torch", code)
    assert done.returncode == 0, done.stderr[-3000:]
    words = done.stdout.split()
    casts, nodes = words[words.index("CASTS") + 1:][:2], words[words.index("NODES") + 1:][:2]
    assert casts[0] == "0" and int(casts[1]) > 0, done.stdout
    assert int(nodes[0]) < int(nodes[1]) and words[words.index("AFTER") + 1] == "1", done.stdout


def test_the_torch_backends_batchnorm_over_the_last_axis_exports_without_reshapes_and_the_same_numbers():
    """Keras's PyTorch backend reshapes each BatchNorm's mean, variance, offset and scale to ``[1, ..., 1, C]``
    whatever the axis, each reshape traced with its shape computed from ``mean.shape[0]``. bnport's export broadcasts
    the ``[C]`` vectors instead (axis -1 in the fixture, 3 and no scale in keras.applications' InceptionV3): one
    Reshape fewer per vector, and the same bits as Keras's own function for every tapped layer. The replacement and
    its mode are gone afterwards (a reshape outside an export reshapes)."""
    code = f"""
import sys, numpy as np, keras, torch
sys.path.insert(0, {str(FIXTURES)!r})
from architectures import keras_resnet
from bnport.adapters.keras import export, taps
from bnport.adapters.keras.compat import keras_ops as compat
from bnport.adapters.keras.graph import graph
from bnport.onnxcheck import session
from keras.src.backend.torch import nn
own = nn.batch_normalization
def reshapes(g):
    return sum(n.op_type == "Reshape" for n in g.model.graph.node)
for model, shape in ((keras_resnet(), (2, 16, 16, 3)),
                     (keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3)), (2, 75, 75, 3))):
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(n.axis in (-1, 3) for n in norms)
    tapped = taps.tapped(model, list(graph(model).nodes))
    export._CACHE.clear()
    lean = export.export_keras(tapped, shape)
    saved, compat._torch_batchnorm_nn = compat._torch_batchnorm_nn, lambda: None  # Keras's own function
    export._CACHE.clear()
    full = export.export_keras(tapped, shape)
    compat._torch_batchnorm_nn = saved
    x = np.random.default_rng(3).standard_normal(shape).astype("float32")
    a, b = session.run(lean.model, lean.feeds(x)), session.run(full.model, full.feeds(x))
    assert len(a) == len(b) > len(norms)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True)), model.name
    vectors = sum(2 + n.center + n.scale for n in norms)
    print("FEWER", model.name, reshapes(full) - reshapes(lean), vectors)
assert nn.batch_normalization is own
print("AFTER", tuple(torch.reshape(torch.ones(3), [1, 1, 3]).shape))
"""
    done = run("torch", code)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split() for line in done.stdout.splitlines()]
    fewer = [line[2:] for line in lines if line[:1] == ["FEWER"]]
    assert len(fewer) == 2 and all(got == want for got, want in fewer), done.stdout
    assert ["AFTER", "(1,", "1,", "3)"] in lines, done.stdout
