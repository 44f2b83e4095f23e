"""Shared test set-up: quiet TensorFlow, deterministic seeds, and builders of real trained-looking layers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: the Keras backend this run tests (scripts/test runs the suite on tensorflow, then the `backends` set on jax and
#: torch); Keras reads the same variable when it is first imported, which is below
BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if BACKEND != "tensorflow":
    # as for a user without TensorFlow: unimportable here and in every subprocess a test starts
    _blocker = str(Path(__file__).parent / "without_tensorflow")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_blocker, os.environ.get("PYTHONPATH")) if p)
    for _name in ("tensorflow", "tf2onnx", "tf_keras"):
        if _name in sys.modules and sys.modules[_name] is not None:
            raise RuntimeError(f"{_name} was imported before tests/conftest.py could make it unimportable")
        sys.modules[_name] = None

settings.register_profile(
    "bnport", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("bnport")


def pytest_report_header(config) -> str:
    return f"Keras backend: {BACKEND}" + ("" if BACKEND == "tensorflow" else " (tensorflow and tf2onnx unimportable)")


def pytest_collection_modifyitems(config, items) -> None:
    """Off TensorFlow, only the tests marked ``backends`` run: the rest check TensorFlow's own paths, or repeat on
    the same code what the marked set covers."""
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"not in the set run on the {BACKEND} backend (marked `backends`)")
    for item in items:
        if "backends" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def torch():
    import torch

    return torch


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras
