"""PyTorch's side of every mapping: BatchNorm, the other layers, the module graph, ONNX export with taps, state-dict
files and hub checkpoints, the zoo's own layer classes. Imports torch (absolute imports: this package never
shadows it)."""
