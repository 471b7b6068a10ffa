"""The torch-free base shared by every part of impasto: errors, image I/O, the ONNX model
contract and its onnxruntime wrapper, style specs, output controls, and the command dispatcher.

It imports nothing else from impasto, so `models`, `training` and `serving` can all build on it."""
