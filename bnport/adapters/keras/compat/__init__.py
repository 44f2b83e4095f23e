"""Every use of a private part of Keras, tf2onnx or jax2onnx, one module per library (with ``keras_ops`` and
``tf2onnx_graph``: what bnport replaces of Keras and tf2onnx while it exports).

Each module probes the installed version for the parts it needs (:func:`probe` there says what is missing, or
None) and falls back to the library's public path where there is one; bnport's other modules call these functions
and never reach into a library's privates themselves. Process-wide replacements go through
:mod:`bnport.adapters.swaps` (one lock, the calling thread only, restored on every exit).
"""
