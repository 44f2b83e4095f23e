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


def pinned(*packages: str) -> bool:
    """Whether the installed versions of ``packages`` are those of scripts/constraints.txt (the main CI leg; the
    floor leg runs scripts/constraints-floor.txt)."""
    from importlib.metadata import version

    pins = dict(line.split("==") for line in (FIXTURES.parent / "scripts" / "constraints.txt").read_text().split()
                if "==" in line)
    return all(version(p).split("+")[0] == pins.get(p) for p in packages)  # 2.13.0+cpu is 2.13.0


def readable_by_this_keras(path) -> bool:
    """Whether this Keras can read the ``.keras`` archive at ``path``: Keras reads the files older versions wrote,
    not those of newer ones (a bundled fixture is written by the pinned Keras; the floor leg runs an older one)."""
    import json
    import zipfile

    import keras

    with zipfile.ZipFile(path) as archive:
        written = json.loads(archive.read("metadata.json"))["keras_version"]
    return tuple(map(int, written.split(".")[:2])) <= tuple(map(int, keras.__version__.split(".")[:2]))
