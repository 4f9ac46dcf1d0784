"""From the HLS project to the board: Vitis HLS and Vivado scripts, their reports, the PYNQ driver, the package."""
