"""The README's Python example runs as written."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_transforms_snippet_runs_and_matches_golden():
    text = README.read_text()
    code = re.search(r"<!-- snippet: transforms -->\n```python\n(.*?)```", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert "Comparison(ok=True" in out.getvalue()
