"""Inference backends other than PyTorch. Same interface as the torch backend
(:class:`vsslzoo.encoder.Encoder`): uint8 clips in, float32 embeddings out.

* ``onnxruntime``: runs ``model.onnx`` written by ``vsslzoo export``; imports no torch.
* ``tensorrt``: runs ``model.engine`` built by ``vsslzoo export --format tensorrt``.
"""

BACKENDS = ("torch", "onnxruntime", "tensorrt")
