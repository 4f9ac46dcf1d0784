"""Fast read-only views of nodes for costing many candidate foldings (fold's search space, converters).

HWNode re-reads and re-validates its attributes on every access (about 1 ms per candidate);
a view memoises the reads and checks on a private copy of the node, and ``set_nodeattr``
forgets what it may change.
"""

from __future__ import annotations

import copy

from qonnx.custom_op.registry import getCustomOp


class _MemoAttrs:
    """Mixin memoising a HWNode's attribute reads and checks; ``set_nodeattr`` forgets what it may change."""

    def _memo(self, key, compute):
        cache = self.__dict__.setdefault("_fold_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _read_attr(self, *args):
        return self._memo(("read", *args), lambda: super(_MemoAttrs, self)._read_attr(*args))

    def _datatype_of(self, *args):  # a pure function of the DataType name: never forgotten
        return self._memo(("dtype", *args), lambda: super(_MemoAttrs, self)._datatype_of(*args))

    def attribute_problems(self):
        return self._memo(("checks", "attribute"), lambda: super(_MemoAttrs, self).attribute_problems())

    def folding_problems(self):
        return self._memo(("checks", "folding"), lambda: super(_MemoAttrs, self).folding_problems())

    def stream_problems(self):
        return self._memo(("checks", "stream"), lambda: super(_MemoAttrs, self).stream_problems())

    def set_nodeattr(self, name, value):
        cache = self.__dict__.get("_fold_memo", {})
        for key in [k for k in cache if k[0] == "checks" or k[:2] == ("read", name)]:
            del cache[key]
        super().set_nodeattr(name, value)


_VIEW_CLASSES: dict[type, type] = {}


def op_view(node):
    """A CustomOp on a private copy of ``node``, with memoised attribute reads (for costing candidates)."""
    cls = type(getCustomOp(node))
    if cls not in _VIEW_CLASSES:
        _VIEW_CLASSES[cls] = type(f"View{cls.__name__}", (_MemoAttrs, cls), {})
    return _VIEW_CLASSES[cls](copy.deepcopy(node))
