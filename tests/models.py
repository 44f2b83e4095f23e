"""Access to the fixture architectures (fixtures/architectures.py) and trained-looking weights for tests."""

from __future__ import annotations

import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

import architectures  # noqa: E402
import trained  # noqa: E402

ARCHITECTURES = architectures.ARCHITECTURES
SMALL = ["resnet", "mobilenet", "conv1d", "conv3d", "mlp"]


def torch_model(name: str, seed: int = 0):
    """A trained-looking PyTorch model of the named architecture, in eval mode."""
    factory, _, shape = ARCHITECTURES[name]
    return trained.torch_trained(factory(), shape, seed)


def keras_model(name: str, seed: int = 0):
    """A trained-looking Keras model of the named architecture."""
    return trained.keras_trained(ARCHITECTURES[name][1](), seed)


def fresh(name: str, framework: str):
    """An untrained model of the named architecture (the destination of a port)."""
    torch_factory, keras_factory, _ = ARCHITECTURES[name]
    return torch_factory().eval() if framework == "torch" else keras_factory()


def sample(name: str, batch: int = 2, seed: int = 1):
    """Seeded channels-first inputs for the architecture."""
    import numpy as np

    shape = ARCHITECTURES[name][2]
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype("float32")


def factory_module(folder: Path, body: str):
    """A model definition file in ``folder``: the fixtures importable, ``architectures`` imported, and a ``BUILT``
    list where the factories defined in ``body`` record what they build. Returns name -> factory reference."""
    path = folder / "factories.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\nimport architectures\n\nBUILT = []\n\n{body}")
    return lambda name: f"{path}:{name}"


def built_by(reference: str) -> list:
    """What the factories of a :func:`factory_module` have built so far."""
    from bnport.io.factories import load_factory

    return load_factory(reference).__globals__["BUILT"]
