"""A checkpoint over 2 GiB, the size no ONNX protobuf can hold: it converts, and it verifies (the PyTorch graph
takes its weights as inputs above ``torch_export.LARGE``, as the Keras graph always does). Run in its own process:
the two models, the file and onnxruntime's feeds peak near 12 GiB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import large_model
from bnport.adapters.torch import export as torch_export
from bnport.workflows.conversion import convert
from bnport.adapters.loading import keras_model, torch_model
from bnport.workflows.verification import verify
from safetensors.torch import save_file

src, dst = sys.argv[1], sys.argv[2]
t = large_model.torch_large()
assert torch_export.is_large(t)
save_file({{k: v.contiguous() for k, v in t.state_dict().items()}}, src)
del t
factory = {here!r} + "/large_model.py"
report = convert(src, dst, torch_model=factory + ":torch_large", keras_model=factory + ":keras_large")
t, k = torch_model(factory + ":torch_large", src), keras_model(factory + ":keras_large", dst)
r = verify(t, k, np.random.default_rng(0).standard_normal((2, large_model.N)).astype("float32"))
print("ok" if r.ok else str(r))
print(len(r.rows), max(row.comparison.max_abs / row.tolerance for row in r.rows + r.final))
"""


def test_a_checkpoint_over_2_gib_converts_and_verifies(tmp_path):
    src, dst = tmp_path / "large.safetensors", tmp_path / "large.weights.h5"
    code = SCRIPT.format(here=str(HERE))
    done = subprocess.run([sys.executable, "-c", code, str(src), str(dst)], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "ok", done.stdout[-3000:]
    assert lines[-1].split()[0] == "3"  # every layer compared
    assert src.stat().st_size > 2**31 and dst.stat().st_size > 2**31


def test_weights_fed_as_inputs_compute_what_weights_in_the_graph_compute(monkeypatch):
    from models import fresh, sample, torch_model

    from bnport.adapters.torch import export as torch_export
    from bnport.workflows.porting import port
    from bnport.workflows.verification import verify

    t, k = torch_model("resnet"), fresh("resnet", "keras")
    port(t, k)
    normal = verify(t, k, sample("resnet"))
    monkeypatch.setattr(torch_export, "LARGE", 0)
    feeds = []
    original = torch_export.weight_feeds
    monkeypatch.setattr(torch_export, "weight_feeds", lambda *a: feeds.append(original(*a)) or feeds[-1])
    fed = verify(t, k, sample("resnet"))
    weights = [key for key in t.state_dict() if not key.endswith("num_batches_tracked")]
    assert len(feeds) == 1 and sorted(feeds[0]) == sorted(weights)  # every weight and statistic fed
    # onnxruntime pre-packs constant weights, so the two paths round differently (about 1e-6): both pass every row
    assert normal.ok and fed.ok
    assert [r.torch_name for r in normal.rows] == [r.torch_name for r in fed.rows]
