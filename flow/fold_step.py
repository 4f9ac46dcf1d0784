"""The ``fold`` build step: automatic folding within the board's budget."""
