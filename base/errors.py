"""The one error type users see: a single line naming the file, field or node and the fix."""


class QnnflowError(Exception):
    """A user-facing failure. The message is one line: what is wrong, where, and how to fix it."""


class BadInputError(QnnflowError):
    """A setting found unusable only once a step sees the model (e.g. a prune SIMD that does not divide a
    layer's channels): bad input, exit code 2, not a failed build."""
