"""Graph transforms: qonnx Transformation subclasses, one concern per module."""
