"""Write the bundled fixtures (seeded, reproducible): real trained layers saved with each framework's own calls.

Run: .venv/bin/python scripts/make_fixtures.py   (rewrites fixtures/*.pt, *.safetensors, *.keras, *.h5, hub/)
     .venv/bin/python scripts/make_fixtures.py hub   (only fixtures/hub/)
     .venv-floor/bin/python scripts/make_fixtures.py keras   (only the .keras archives, with the floor Keras)

Keras reads the ``.keras`` archives older versions wrote, not those of newer ones (a newer Keras adds settings to
a layer's config that an older one refuses). The bundled archives are therefore written by the oldest Keras
bnport supports (the floor set, scripts/constraints-floor.txt), so that every supported Keras reads them, the
demo included; tests/test_architecture.py checks it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures"))

import architectures  # noqa: E402
import models  # noqa: E402
import torch  # noqa: E402
import trained  # noqa: E402

SEED = 20261128


def train_bn_layers() -> torch.nn.Module:
    """Run the three BatchNorm layers in training mode on shifted, scaled batches so the stats are trained."""
    torch.manual_seed(SEED)
    net = models.torch_bn_layers().train()
    with torch.no_grad():
        for bn in (net.bn1d, net.bn2d, net.bn3d):  # gamma around 1, beta around 0, as after training
            bn.weight.copy_(1.0 + 0.25 * torch.randn_like(bn.weight))
            bn.bias.copy_(0.2 * torch.randn_like(bn.bias))
        for _ in range(30):
            net(
                torch.randn(16, 8) * 2.0 + 0.5,
                torch.randn(4, 16, 6, 6) * torch.linspace(0.5, 3.0, 16).view(1, 16, 1, 1) - 1.0,
                torch.randn(2, 4, 3, 4, 4) * 0.3 + 2.0,
            )
    return net.eval()


def naive_keras_port(net: torch.nn.Module):
    """What a hand port gets wrong: weights and statistics copied, Keras defaults for epsilon and momentum."""
    model = models.keras_bn_layers()
    for name in ("bn1d", "bn2d", "bn3d"):
        bn = getattr(net, name)
        model.get_layer(name).set_weights(
            [t.detach().numpy() for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
        )
    return model


def write_architectures(out: Path, *, keras_archives_only: bool = False) -> None:
    """Each small architecture trained-looking in each framework (different seeds), in its own file format."""
    from safetensors.torch import save_file

    for i, (name, (torch_file, keras_file)) in enumerate(architectures.FILES.items()):
        torch_factory, keras_factory, shape = architectures.ARCHITECTURES[name]
        if keras_archives_only:
            if keras_file.endswith(".keras"):
                trained.keras_trained(keras_factory(), SEED + 100 + i).save(out / keras_file)
            continue
        net = trained.torch_trained(torch_factory(), shape, SEED + i)
        state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        if torch_file.endswith(".safetensors"):
            save_file(state, str(out / torch_file))
        elif name == "resnet":
            torch.save({"state_dict": state, "epoch": 3}, out / torch_file)  # a common training-script nesting
        else:
            torch.save(state, out / torch_file)
        model = trained.keras_trained(keras_factory(), SEED + 100 + i)
        if keras_file.endswith(".weights.h5"):
            model.save_weights(out / keras_file)
        else:
            model.save(out / keras_file)  # .keras archive, or ".h5" alone: the legacy Keras 2 HDF5 layout


def write_hub_forms(out: Path) -> None:
    """The fixture ResNet's weights in the forms hubs and training scripts ship (fixtures/hub/), and a tied model.

    Every form holds the same tensors as a plain state dict of the seeded model, so a conversion of each must give
    what the plain one gives: shards with an index (safetensors and pickles), a hub folder, training-wrapper key
    prefixes, a Lightning checkpoint, an EMA copy beside the main weights, float16 and bfloat16 copies, and a
    tied embedding stored under one of its two names (as Hugging Face drops the tied head).
    """
    import json

    from safetensors.torch import save_file

    hub = out / "hub"
    for folder in ("sharded", "sharded_bin", "folder"):
        (hub / folder).mkdir(parents=True, exist_ok=True)
    torch_factory, _, shape = architectures.ARCHITECTURES["resnet"]
    net = trained.torch_trained(torch_factory(), shape, SEED + 500)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    keys = list(state)
    halves = (keys[: len(keys) // 2], keys[len(keys) // 2:])
    for folder, stem, ext, index in (("sharded", "model", ".safetensors", "model.safetensors.index.json"),
                                     ("sharded_bin", "pytorch_model", ".bin", "pytorch_model.bin.index.json")):
        weight_map = {}
        for i, part in enumerate(halves, 1):
            name = f"{stem}-{i:05d}-of-00002{ext}"
            shard = {k: state[k] for k in part}
            if ext == ".safetensors":
                save_file(shard, str(hub / folder / name))
            else:
                torch.save(shard, hub / folder / name)
            weight_map.update(dict.fromkeys(part, name))
        total = sum(v.numel() * v.element_size() for v in state.values())
        (hub / folder / index).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                     indent=1))
    save_file(state, str(hub / "folder" / "model.safetensors"))
    (hub / "folder" / "config.json").write_text(json.dumps({"architecture": "fixture resnet"}))
    torch.save({"model": {f"module._orig_mod.{k}": v for k, v in state.items()}}, hub / "ddp_compiled.pt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 7, "global_step": 112},
               hub / "lightning.ckpt")
    gen = torch.Generator().manual_seed(SEED + 501)
    ema = {k: (0.9 * v + 0.1 * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v.clone()
           for k, v in state.items()}
    ema = {k: v.abs() if k.endswith("running_var") else v for k, v in ema.items()}
    torch.save({"state_dict": state, "state_dict_ema": ema, "epoch": 3}, hub / "ema.pt")
    for dtype in (torch.float16, torch.bfloat16):
        save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()},
                  str(hub / f"resnet_{str(dtype)[6:]}.safetensors"))
    tied = models.torch_tied()
    with torch.no_grad():
        for p in tied.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    save_file({k: v.detach().clone() for k, v in tied.state_dict().items() if k != "head.weight"},
              str(hub / "tied.safetensors"))


def main() -> None:
    out = ROOT / "fixtures"
    if sys.argv[1:] == ["hub"]:  # only fixtures/hub/ (the other fixtures are left as they are)
        write_hub_forms(out)
        return
    if sys.argv[1:] == ["keras"]:  # only the .keras archives (run with the floor Keras: see the module docstring)
        write_architectures(out, keras_archives_only=True)
        naive_keras_port(train_bn_layers()).save(out / "bn_layers_naive.keras")
        return
    write_architectures(out)
    write_hub_forms(out)
    net = train_bn_layers()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(state, out / "bn_layers.pt")
    from safetensors.torch import save_file

    save_file(state, str(out / "bn_layers.safetensors"))
    naive_keras_port(net).save(out / "bn_layers_naive.keras")
    print("wrote", *sorted(p.name for p in out.iterdir() if p.suffix != ".py"))


if __name__ == "__main__":
    main()
