"""Files handed over whole or not at all: written beside their final name, then renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from analytics_core.filters import InputError, clip


def stage(target: Path, content: bytes) -> Path:
    """``content`` in a temporary file beside ``target``, to be renamed to it; a write
    that fails part way (a full disk) leaves nothing behind."""
    shown = clip(str(target), 300)
    try:
        handle, name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
    except OSError as exc:
        raise InputError(f"cannot write --out {shown!r}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            # mkstemp makes it 0600; the file is the user's as any file they write.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(file.fileno(), 0o666 & ~umask)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException as exc:
        Path(name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write --out {shown!r}: {exc.strerror or exc}") from None
        raise
    return Path(name)
