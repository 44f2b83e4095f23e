"""The inputs real models take, through verify and the CLI: several (named), open sizes, integer ids, batches."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from models import FIXTURES

from bnport.adapters import loading
from bnport.core import model_inputs
from bnport.errors import UsageError
from bnport.workflows.porting import port
from bnport.workflows.verification import verify

BN_LAYERS = f"{FIXTURES / 'models.py'}:torch_bn_layers"
SHAPES = [(2, 8), (3, 16, 5, 6), (1, 4, 3, 4, 5)]


@pytest.fixture(scope="module")
def three_inputs():
    """The fixture's three BatchNorm layers (1d, 2d, 3d), one model input each, sizes left open in Keras."""
    t = loading.torch_model(BN_LAYERS, FIXTURES / "bn_layers.pt")
    k = loading.keras_model(f"{FIXTURES / 'models.py'}:keras_bn_layers")
    with pytest.warns(Warning, match="momentum=None"):
        port(t, k)
    return t, k


@pytest.fixture(scope="module")
def tokens():
    t = loading.torch_model(f"{FIXTURES / 'models.py'}:torch_tied", FIXTURES / "hub" / "tied.safetensors")
    k = loading.keras_model(f"{FIXTURES / 'models.py'}:keras_tied")
    port(t, k)
    return t, k


def test_several_inputs_of_open_sizes_take_their_shapes(three_inputs):
    t, k = three_inputs
    r = verify(t, k, input_shape=SHAPES)
    assert r.ok and r.input_shapes == SHAPES and len(r.rows) == 3, str(r)
    with pytest.raises(UsageError, match=r"the Keras model's input 'x2d' has shape \(None, None, None, 16\), with "
                                         r"sizes it leaves open; give the inputs, or their shapes"):
        verify(t, k)


def test_several_inputs_given_in_order_or_by_name(three_inputs):
    t, k = three_inputs
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s).astype("float32") for s in SHAPES]
    by_order = verify(t, k, arrays)
    by_name = verify(t, k, {"x3d": arrays[2], "x1d": arrays[0], "x2d": arrays[1]})
    assert by_order.ok and by_name.ok
    assert [r.comparison.max_abs for r in by_order.rows] == [r.comparison.max_abs for r in by_name.rows]
    with pytest.raises(UsageError, match=r"named by the Keras model's inputs \['x1d', 'x2d', 'x3d'\]\. Received: "
                                         r"\['x1d', 'x2e', 'x3d'\]; unknown \['x2e'\]; missing \['x2d'\]"):
        verify(t, k, {"x1d": arrays[0], "x2e": arrays[1], "x3d": arrays[2]})
    with pytest.raises(UsageError, match=r"the Keras model takes 3 inputs \(x1d, x2d, x3d\)"):
        verify(t, k, arrays[0])


def test_an_input_of_the_wrong_shape_is_named(three_inputs):
    t, k = three_inputs
    arrays = [np.zeros(s, "float32") for s in [(2, 8), (3, 15, 5, 6), (1, 4, 3, 4, 5)]]
    with pytest.raises(UsageError, match=r"input 'x2d' has shape \(3, 15, 5, 6\) \(channels-first\) but the Keras "
                                         r"model takes \(None, None, None, 16\)"):
        verify(t, k, arrays)


@pytest.mark.parametrize("batch", [1, 5])
def test_integer_token_inputs_are_drawn_below_the_vocabulary(tokens, batch):
    t, k = tokens
    r = verify(t, k, batch=batch)
    assert r.ok and r.input_shapes == [(batch, 5)], str(r)
    spec = model_inputs.InputSpec("tokens", (None, 5), "int32")
    drawn = model_inputs.resolve([spec], None, keras_last=True, batch=200, vocab={0: 12})
    assert drawn.torch[0].dtype == np.int64 and drawn.keras[0].dtype == np.int32
    assert drawn.torch[0].min() >= 0 and drawn.torch[0].max() == 11  # the whole vocabulary, never past it


def test_the_cli_takes_batches_and_named_inputs(tokens, tmp_path):
    _, k = tokens
    k.save(tmp_path / "tied.keras")
    base = [sys.executable, "-m", "bnport", "verify", "--torch-model", f"{FIXTURES / 'models.py'}:torch_tied",
            "--torch-weights", str(FIXTURES / "hub" / "tied.safetensors"),
            "--keras-model", str(tmp_path / "tied.keras")]
    done = subprocess.run([*base, "--batch", "3"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ok: 3 layers" in done.stdout, done.stdout + done.stderr[-2000:]
    np.savez(tmp_path / "tokens.npz", tokens=np.array([[1, 2, 3, 4, 5], [11, 0, 0, 7, 7]]))
    done = subprocess.run([*base, "--inputs", str(tmp_path / "tokens.npz"), "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    import json

    assert json.loads((tmp_path / "r.json").read_text())["input_shapes"] == [[2, 5]]
    done = subprocess.run([*base, "--input-shape", "2,a"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "a shape is positive sizes separated by commas" in done.stderr
