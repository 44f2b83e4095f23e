"""Shared test set-up: quiet TensorFlow, deterministic seeds, and builders of real trained-looking layers."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "bnport", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("bnport")


@pytest.fixture(scope="session")
def torch():
    import torch

    return torch


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras
