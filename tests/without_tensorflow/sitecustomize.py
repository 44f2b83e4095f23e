"""Makes TensorFlow and tf2onnx unimportable in a test's subprocess, as for a user without them.

tests/conftest.py puts this folder first on PYTHONPATH when the suite runs on Keras's JAX or PyTorch backend; Python
imports ``sitecustomize`` at start-up. ``None`` in ``sys.modules`` makes ``import tensorflow`` raise ImportError and
``importlib.util.find_spec`` report it missing, which Keras and PyTorch both check.
"""

import sys

for _name in ("tensorflow", "tf2onnx", "tf_keras"):
    sys.modules[_name] = None
