"""Untrusted and broken inputs: each row of the README's Security table, through the API and the CLI.

Every case asserts the bnport error type, the key facts of its message, and that the inputs are unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from models import FIXTURES, fresh, torch_model

from bnport import BnportError, CheckpointError, SpecError, UsageError, from_torch
from bnport.adapters.keras.files import load_model, load_weights
from bnport.adapters.torch.files import read_state_dict
from bnport.core.pairing import load_mapping
from bnport.workflows.conversion import convert
from bnport.workflows.inspection import inspect
from bnport.workflows.porting import port

ARCH = FIXTURES / "architectures.py"
MLP = (f"{ARCH}:torch_mlp", f"{ARCH}:keras_mlp")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bnport", *args], capture_output=True, text=True, timeout=300)


def read_any(path: Path):
    """What bnport does first with a checkpoint of this name."""
    name = path.name
    if name.endswith((".pt", ".pth", ".safetensors")):
        return read_state_dict(path)
    if name.endswith(".keras"):
        return load_model(path)
    return load_weights(fresh("resnet", "keras"), path)


class Payload:
    """Pickles to a call of os.system: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path, torch):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload(marker)}, evil)
    before = sha(evil)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(evil)
    assert "was refused" in str(info.value) and "weights_only=True" in str(info.value)
    assert "no unsafe fallback" in str(info.value)
    out = cli("inspect", str(evil))
    assert out.returncode == 2 and "was refused" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists() and sha(evil) == before


SOURCES = ["resnet.pt", "mobilenet.safetensors", "resnet.weights.h5", "mobilenet.keras", "conv1d.h5"]


@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty"])
def test_damaged_files_are_clear_errors(name, damage, tmp_path):
    data = (FIXTURES / name).read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupted":  # the structure, not only numbers (a safetensors header is JSON at byte 8)
        start = 8 if name.endswith(".safetensors") else len(data) // 3
        data = data[:start] + bytes(b ^ 0xFF for b in data[start:start + 4096]) + data[start + 4096:]
    else:
        data = b""
    path = tmp_path / name
    path.write_bytes(data)
    before = sha(path)
    with pytest.raises(CheckpointError) as info:
        read_any(path)
    assert str(path) in str(info.value)
    if damage == "truncated":  # the CLI path once per format (each call starts the frameworks)
        out = cli("inspect", str(path))
        assert out.returncode == 2 and out.stderr.startswith("bnport: error: ") and "Traceback" not in out.stderr
    assert sha(path) == before


@pytest.mark.parametrize(("name", "content_of"), [
    ("fake.pt", "resnet.weights.h5"), ("fake.keras", "resnet.pt"), ("fake.safetensors", "mobilenet.keras"),
    ("fake.weights.h5", "mlp.pt"),
])
def test_wrong_extension_for_the_content(name, content_of, tmp_path):
    path = tmp_path / name
    shutil.copy(FIXTURES / content_of, path)
    with pytest.raises(CheckpointError, match=str(path)):
        read_any(path)


def _keras_archive_with(tmp_path: Path, layer) -> Path:
    import keras

    inp = keras.Input((3,))
    model = keras.Model(inp, layer(inp))
    path = tmp_path / "unsafe.keras"
    model.save(path)
    return path


def test_keras_archive_with_a_lambda_is_refused(tmp_path, keras):
    path = _keras_archive_with(tmp_path, keras.layers.Lambda(lambda x: x * 2))
    with pytest.raises(CheckpointError, match="could not be loaded safely") as info:
        load_model(path)
    assert "Lambda" in str(info.value) or "unsafe" in str(info.value).lower()


def test_keras_archive_with_a_custom_object_is_refused(tmp_path, keras):
    @keras.saving.register_keras_serializable(package="evil")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    path = _keras_archive_with(tmp_path, Doubler())
    keras.saving.get_custom_objects().clear()  # a stranger's class is not registered here
    with pytest.raises(CheckpointError, match="could not be loaded safely"):
        load_model(path)


def test_another_dtype_in_the_file_is_cast_to_the_models_and_said(tmp_path, torch):
    """The destination keeps its own dtype: a float64 checkpoint loads into the float32 model, rounded, and the
    report says so (it used to be refused)."""
    state = {k: (v.double() if v.is_floating_point() else v) for k, v in
             torch.load(FIXTURES / "mlp.pt", weights_only=True).items()}
    path = tmp_path / "double.pt"
    torch.save(state, path)
    report = convert(path, tmp_path / "out.keras", torch_model=MLP[0], keras_model=MLP[1])
    assert any("stored as float64, cast to the model's float32 rounding each value by at most 5.96e-08" in n
               for n in report.notes), report.notes


@pytest.mark.parametrize(("key", "value", "fact"), [
    ("1.weight", float("nan"), "1: gamma has 1 non-finite value"),
    ("1.bias", float("inf"), "1: beta has 1 non-finite value"),
    ("1.running_mean", float("nan"), "1: running_mean has 1 non-finite value"),
    ("5.running_var", float("inf"), "5: running_var has 1 non-finite value"),
    ("5.running_var", -0.5, "5: running_var has 1 negative value (min -0.5)"),
])
def test_impossible_statistics_are_refused_unless_allowed(key, value, fact, tmp_path, torch):
    state = torch.load(FIXTURES / "mlp.pt", weights_only=True)
    state[key][0] = value
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    before = sha(path)
    with pytest.raises(SpecError) as info:
        convert(path, tmp_path / "out.keras", torch_model=MLP[0], keras_model=MLP[1])
    assert fact in str(info.value) and "allow_bad_stats=True" in str(info.value)
    assert not (tmp_path / "out.keras").exists()
    assert port(torch_model_from(path), fresh("mlp", "keras"), allow_bad_stats=True).tensors == 14
    assert sha(path) == before


def torch_model_from(path: Path):
    from bnport.adapters.loading import torch_model as load

    return load(MLP[0], path)


def test_impossible_statistics_through_the_cli(tmp_path, torch):
    state = torch.load(FIXTURES / "mlp.pt", weights_only=True)
    state["5.running_var"][0] = -0.5
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    before = sha(path)
    fact = "5: running_var has 1 negative value (min -0.5)"
    out = cli("convert", str(path), str(tmp_path / "out.keras"), "--torch-model", MLP[0], "--keras-model", MLP[1])
    assert out.returncode == 2 and fact in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out.keras").exists()
    allowed = cli("convert", str(path), str(tmp_path / "out.keras"), "--torch-model", MLP[0], "--keras-model",
                  MLP[1], "--allow-bad-stats")
    assert allowed.returncode == 0, allowed.stderr
    assert sha(path) == before
    out = cli("inspect", str(path))
    assert out.returncode == 0 and fact.split(": ", 1)[1].upper() in out.stdout


def test_zero_channels(torch, tmp_path):
    with pytest.raises(SpecError, match=r"channels must be positive\. Received: channels=0"):
        from_torch(torch.nn.BatchNorm2d(0))
    path = tmp_path / "zero.pt"
    torch.save(torch.nn.BatchNorm2d(0).state_dict(), path)
    out = cli("inspect", str(path))
    assert out.returncode == 2 and "channels must be positive" in out.stderr


def test_absurd_shape_in_a_safetensors_header(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**12, 10**12], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "absurd.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_state_dict(path)
    huge = tmp_path / "huge-header.safetensors"
    huge.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_state_dict(huge)


def test_disk_full_leaves_no_file(tmp_path, monkeypatch):
    import h5py

    def full(self, name, value):  # the first dataset fails to write, as on a full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(h5py.Group, "__setitem__", full)
    dst = tmp_path / "out.weights.h5"
    with pytest.raises(CheckpointError, match="No space left on device"):
        convert(FIXTURES / "mlp.pt", dst, torch_model=MLP[0], keras_model=MLP[1])
    assert list(tmp_path.iterdir()) == []


def test_no_room_for_the_file_is_refused_before_writing(tmp_path, monkeypatch):
    """HDF5 crashes the process when a write fails for lack of space (h5py #914): bnport checks first."""
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=100_000))
    dst = tmp_path / "out.weights.h5"
    with pytest.raises(CheckpointError, match=r"out.weights.h5: about 1\.\d MiB needed, 0\.1 MiB free"):
        convert(FIXTURES / "mlp.pt", dst, torch_model=MLP[0], keras_model=MLP[1])
    assert list(tmp_path.iterdir()) == []


def _file_size_limit(limit: int):
    def apply():  # in the child: past the limit a write fails with EFBIG instead of killing the process
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("src, dst", [("mlp.keras", "out.pt"), ("mlp.keras", "out.safetensors"),
                                      ("mlp.pt", "out.weights.h5"), ("mlp.pt", "out.h5")])
def test_a_write_that_fails_midway_is_a_clean_error(src, dst, tmp_path):
    """A write the file size limit stops (as a full disk would): an error, exit 2, no traceback, no file. PyTorch
    files fail while being written; HDF5 files are refused before (HDF5 crashes the process on a failed write)."""
    out = subprocess.run([sys.executable, "-m", "bnport", "convert", str(FIXTURES / src), str(tmp_path / dst),
                          "--torch-model", MLP[0], "--keras-model", MLP[1]], capture_output=True, text=True,
                         timeout=300, preexec_fn=_file_size_limit(2000))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "could not write" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_killed_conversion_leaves_the_old_file(tmp_path, torch):
    src = tmp_path / "big.pt"
    torch.save(torch_model("resnet50").state_dict(), src)  # ~100 MB: the write takes long enough to interrupt
    dst = tmp_path / "big.weights.h5"
    dst.write_bytes(b"the previous conversion")
    before = sha(src)
    proc = subprocess.Popen([sys.executable, "-m", "bnport", "convert", str(src), str(dst), "--torch-model",
                             f"{ARCH}:torch_resnet50", "--keras-model", f"{ARCH}:keras_resnet50", "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    tmp = None
    while time.monotonic() < deadline and proc.poll() is None:
        tmp = next((p for p in tmp_path.iterdir() if p.name.startswith(".bnport-tmp-")), None)
        if tmp is not None and tmp.stat().st_size > 0:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the conversion ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert dst.read_bytes() == b"the previous conversion"
    assert sha(src) == before
    assert [p.name for p in tmp_path.iterdir() if p.name not in (src.name, dst.name)] in ([], [tmp.name])


# ------------------------------------------------------------------ fuzzing -------------------------------

SUFFIXES = [".pt", ".safetensors", ".keras", ".weights.h5", ".h5"]


@settings(max_examples=60)
@given(suffix=st.sampled_from(SUFFIXES), data=st.binary(max_size=2048))
def test_random_bytes_only_raise_bnport_errors(suffix, data, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(data)
    with pytest.raises(BnportError):
        read_any(path)
    with pytest.raises(BnportError):
        inspect(path)


@settings(max_examples=60)
@given(name=st.sampled_from(SOURCES), cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1),
       st.integers(1, 255)), max_size=8))
def test_mutated_fixture_files_only_raise_bnport_errors(name, cut, flips, tmp_path_factory):
    data = bytearray((FIXTURES / name).read_bytes())
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    data = data[: max(1, int(cut * len(data)))] if cut < 1.0 else data
    path = tmp_path_factory.mktemp("mut") / name
    path.write_bytes(bytes(data))
    for action in (read_any, inspect):
        with contextlib.suppress(BnportError):  # a clear bnport error, or a successful read: nothing else
            action(path)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=4), max_leaves=12)


@given(json_values)
def test_mapping_loader_only_raises_usage_errors(value):
    with contextlib.suppress(UsageError):
        load_mapping(value)


def test_mapping_file_errors(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="is not valid JSON"):
        load_mapping(bad)
    with pytest.raises(UsageError, match="cannot read mapping file"):
        load_mapping(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="not a valid regular expression"):
        load_mapping({"rules": [{"torch": "(", "keras": "x"}]})


def test_port_refuses_bad_numbers_in_memory(torch):
    t, k = torch_model("mlp"), fresh("mlp", "keras")
    with torch.no_grad():
        t[5].running_var[3] = float("nan")
    with pytest.raises(SpecError, match="5: running_var has 1 non-finite value"):
        port(t, k)
    before = [np.array(v.numpy()) for v in k.weights]
    assert all(np.array_equal(a, np.array(v.numpy())) for a, v in zip(before, k.weights, strict=True))
    assert port(t, k, allow_bad_stats=True).tensors == 14
