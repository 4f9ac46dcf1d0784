"""Build steps of the HLS back end (C++ generation, C++ simulation)."""
