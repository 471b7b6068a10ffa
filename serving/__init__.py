"""onnxruntime inference, image codec, HTTP service and CLI. Never imports torch."""
