"""vsslzoo.export: backbones to ONNX and TensorRT.

Installed as ``vsslzoo.export`` from the repository's top-level ``export/`` folder.
The exporters land with their own issue; this release ships none of them yet.
"""
