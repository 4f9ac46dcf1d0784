"""The one error type users see: a single line naming the file, field or node and the fix."""


class QnnflowError(Exception):
    """A user-facing failure. The message is one line: what is wrong, where, and how to fix it."""
