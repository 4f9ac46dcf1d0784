"""qnnflow's build flow: configuration, step registry, the steps, runner, reports and CLI.

The orchestration layer: it imports the transforms, models and node library; nothing imports it.
"""
