"""Build configurations and board descriptions (YAML), shipped as package data."""
