"""qnnflow's base: what every layer above may use, importing nothing of qnnflow above it.

Errors (``errors``), executing and comparing graphs (``execute``), integer tensor values
(``values``), the stream word format (``streams``), user code references (``userspec``) and
the C++ compiler (``toolchain``).
"""

__version__ = "0.1.0"
