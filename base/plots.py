"""Matplotlib figures as the PNG bytes a report writes."""

import io


def png_bytes(fig, dpi: int = 90) -> bytes:
    """``fig`` laid out and rendered as PNG, then closed.  No software tag: the same figure gives the
    same bytes, so a report's files are deterministic."""
    from matplotlib import pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
