"""The framework-neutral core: BatchNorm and layer specs, layouts, graphs and pairing, tolerances, comparisons,
findings and the references they are checked against.

Imports the standard library, numpy and bnport.core / bnport.errors only (a test checks it in a fresh interpreter):
the core runs without torch, TensorFlow, Keras or onnx.
"""
