"""The analysis toolkit's user-facing error."""
from __future__ import annotations

from impasto.core.errors import ImpastoError


class AnalysisError(ImpastoError, ValueError):
    """Bad input to an analysis method (unknown layer or class, unusable model or image).

    A ``ValueError`` too, so library callers can catch it as one; the CLI prints its one-line
    message and exits with status 2.
    """
