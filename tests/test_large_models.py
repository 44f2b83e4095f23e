"""A checkpoint over 2 GiB, the size no ONNX protobuf can hold: it converts, and it verifies (both graphs take their
weights as inputs, fed at run time). Run in its own process: the two models, the file and onnxruntime's feeds peak
near 12 GiB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import large_model
from bnport.workflows.conversion import convert
from bnport.adapters.loading import keras_model, torch_model
from bnport.workflows.verification import verify
from safetensors.torch import save_file

src, dst = sys.argv[1], sys.argv[2]
t = large_model.torch_large()
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


def test_verify_feeds_every_torch_weight_as_a_view_and_it_computes_what_weights_in_the_graph_compute(monkeypatch):
    import numpy as np
    from models import fresh, sample, torch_model

    from bnport.adapters.torch import export as torch_export
    from bnport.onnxcheck import session as runtime
    from bnport.workflows.porting import port
    from bnport.workflows.verification import verify

    t, k = torch_model("resnet"), fresh("resnet", "keras")
    port(t, k)
    feeds, graphs = [], []
    original, export = torch_export.weight_feeds, torch_export.export_torch
    monkeypatch.setattr(torch_export, "weight_feeds", lambda *a: feeds.append(original(*a)) or feeds[-1])
    monkeypatch.setattr(torch_export, "export_torch", lambda *a, **kw: graphs.append(export(*a, **kw)) or graphs[-1])
    report = verify(t, k, sample("resnet"))
    assert report.ok and report.rows
    weights = {key: v for key, v in t.state_dict().items() if not key.endswith("num_batches_tracked")}
    assert len(feeds) == 1 and sorted(feeds[0]) == sorted(weights)  # every weight and statistic fed ...
    assert all(np.shares_memory(feeds[0][key], weights[key].numpy()) for key in weights)  # ... as the tensor itself
    assert len(graphs) == 1 and not any(i.name in weights for i in graphs[0].graph.initializer)

    # the same module with its weights in the graph: onnxruntime pre-packs constant weights and rounds differently,
    # within the float32 tolerance verify gives the output (2 * 2**-24 * depth * max|y|, depth from the architecture)
    x = sample("resnet")
    (inside,) = runtime.run(export(t.eval(), x), x)
    fed = export(t, x, weights_as_inputs=True)
    (outside,) = runtime.run(fed, {"input": x, **original(t, fed)})
    assert np.abs(inside - outside).max() <= report.final[0].tolerance
