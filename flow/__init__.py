"""qnnflow's build flow: configuration, step registry, runner, reports and CLI."""

__version__ = "0.1.0"
