"""The Brevitas model zoo, data loaders and QONNX export."""
