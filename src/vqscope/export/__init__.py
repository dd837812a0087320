"""Export a model's learned parts to other runtimes (ONNX today)."""

from .onnx import export_onnx, use_onnx

__all__ = ["export_onnx", "use_onnx"]
