"""Export a model's learned parts to other runtimes: ONNX (ONNX Runtime) and TensorRT engines."""

from .onnx import export_onnx, use_onnx
from .tensorrt import export_tensorrt, use_tensorrt

__all__ = ["export_onnx", "use_onnx", "export_tensorrt", "use_tensorrt"]
