"""Running models in ONNX Runtime and the ONNX reference models bnport checks against.

Imports onnx, onnxruntime, numpy and bnport.core / bnport.errors; no framework.
"""
