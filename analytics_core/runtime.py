"""Process-level settings for a long-running process that builds pages (the app)."""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_objects() -> None:
    """Put every object alive now (what the imports and the first script run left:
    modules, classes, constants) out of the cyclic garbage collector's reach, once per
    process (a few garbage cycles of that first run stay uncollected: bounded, small).

    Its full collections otherwise walk those hundreds of thousands of objects again and
    again while a page allocates its statements and frames: measured at a third of the
    CPU time of a small page. Objects created later are collected as usual."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
