"""User-facing errors: each carries a one-line message and maps to a 4xx / non-zero exit."""


class ImpastoError(Exception):
    """Base class for errors caused by the caller's input, not by a bug."""


class ImageError(ImpastoError):
    """An image could not be read, or it breaks a limit (size, pixels, format)."""


class StyleError(ImpastoError):
    """A style name or blend specification is unknown or malformed."""


class ModelError(ImpastoError):
    """An ONNX model is missing, unreadable, or lacks impasto's metadata."""


class OptionError(ImpastoError):
    """A request option (strength, size, ...) is out of range."""
