"""C++ generation for the dataflow region: ``project`` (the HLS project of a graph), ``kernel``
(what a node's ``emit`` returns, and its helpers) and ``cpp`` (C++ text)."""
