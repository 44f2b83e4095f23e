"""Keras 3's side of every mapping: BatchNorm, the other layers, the functional graph (nested models and composite
layers), ONNX export with taps, weights files and writes. Imports keras (and TensorFlow and tf2onnx where the
export needs them)."""
