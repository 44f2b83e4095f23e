"""A tap holds its layer's output as computed, copied only where a later in-place operation could overwrite it
(bnport/adapters/torch/snapshots.py).

The expected values are computed here eagerly, layer by layer, before anything runs in place; each model's
BatchNorm outputs have negative values, which an in-place ReLU read too late would have clipped to zero. The same on
torchvision's models: tests/test_zoo_regressions.py (the zoo needs torchvision, which the floor leg has not)."""

from __future__ import annotations

import pytest
import torch
from models import trained
from torch import nn
from torch.nn import functional as F

from bnport.adapters.torch.export import with_taps


class _Layers(nn.Module):
    """Four convs and BatchNorms, named c.i and b.i; ``outputs`` computes each one's output eagerly, kept (cloned) the
    moment it is computed, the in-place operations as forward writes them."""

    def __init__(self, n: int = 4):
        super().__init__()
        self.c = nn.ModuleList(nn.Conv2d(4 if i else 3, 4, 3, padding=1, bias=False) for i in range(n))
        self.b = nn.ModuleList(nn.BatchNorm2d(4) for _ in range(n))

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}

        def keep(name: str, value: torch.Tensor) -> torch.Tensor:
            out[name] = value.clone()
            return value

        with torch.no_grad():
            self.eager(x, keep)
        return out


class InPlaceOnly(_Layers):
    """Each BatchNorm output read only by an in-place activation of torch.nn: module, function, method, torch.*_."""

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)  # shared, as torchvision's Bottleneck does

    def forward(self, x):
        x = self.relu(self.b[0](self.c[0](x)))
        x = F.relu(self.b[1](self.c[1](x)), inplace=True)
        x = self.b[2](self.c[2](x)).relu_()
        x = torch.relu_(self.b[3](self.c[3](x)))
        return self.relu(x)

    def eager(self, x, keep):
        for i, act in enumerate([self.relu, lambda t: F.relu(t, inplace=True), torch.Tensor.relu_, torch.relu_]):
            x = act(keep(f"b.{i}", self.b[i](keep(f"c.{i}", self.c[i](x)))))


class Overwritten(_Layers):
    """BatchNorm outputs changed in place while something else still reads them (b.0), or through a view (b.2);
    and two that need no copy: ``z += y`` (b.1; torch.fx records it as ``z + y``) and a ReLU subclass (b.3; torch.fx
    traces into it, and its in-place ``F.relu`` runs out of place)."""

    class MyReLU(nn.ReLU):
        pass

    def __init__(self):
        super().__init__()
        self.relu, self.mine = nn.ReLU(inplace=True), self.MyReLU(inplace=True)

    def forward(self, x):
        y = self.b[0](self.c[0](x))
        self.relu(y)  # the result unused: the conv below reads y as overwritten
        y = self.c[1](y)
        z = self.b[1](y)
        z += y  # torchvision's out += identity
        v = self.b[2](self.c[2](z))
        v.view(v.shape).relu_()
        return self.mine(self.b[3](self.c[3](v)))

    def eager(self, x, keep):
        c, b = self.c, self.b
        y = keep("b.0", b[0](keep("c.0", c[0](x))))
        self.relu(y)
        y = keep("c.1", c[1](y))
        z = keep("b.1", b[1](y))
        z += y
        v = keep("b.2", b[2](keep("c.2", c[2](z))))
        v.view(v.shape).relu_()
        keep("b.3", b[3](keep("c.3", c[3](v))))


def _clones(tapped: nn.Module) -> int:
    return sum(1 for n in tapped.graph.nodes if n.target is torch.clone)


@pytest.mark.backends
@pytest.mark.parametrize(("cls", "clones"), [(InPlaceOnly, 0), (Overwritten, 2)])
def test_taps_hold_each_layer_output_and_are_copied_only_where_something_could_overwrite_them(cls, clones):
    model = trained.torch_trained(cls(), (3, 6, 6), seed=0)
    names = [f"{kind}.{i}" for i in range(4) for kind in ("c", "b")]
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    expected = model.outputs(x)
    with torch.no_grad():
        own = model(x.clone())
    tapped, finals = with_taps(model, names)
    with torch.no_grad():
        got = tapped(x.clone())
    assert finals == 1 and torch.equal(got[0], own)  # the model's own output as it computes it
    for name, value in zip(names, got[1:], strict=True):
        assert torch.equal(value, expected[name]), name
    assert all(expected[f"b.{i}"].min() < -0.1 for i in range(4))  # a tap read after an in-place ReLU would differ
    # copies only where needed: of b.0 (read again after the in-place ReLU) and b.2 (changed through a view)
    assert _clones(tapped) == clones
    # the activations that ran out of place did so in the tapped copy only: the model's own are unchanged
    assert model.relu.inplace is True
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
