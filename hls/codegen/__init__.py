"""C++ code generation for the hardware region of a dataflow graph (see ``project.generate``)."""

from qnnflow.hls.codegen.project import HlsProject, Region, generate, hardware_region

__all__ = ["HlsProject", "Region", "generate", "hardware_region"]
