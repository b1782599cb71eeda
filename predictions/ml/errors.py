"""Why the pipeline refuses an input. Each refusal carries the HTTP status a web adapter should answer with,
so the adapter maps errors generically instead of knowing every subclass."""


class ImageRejected(Exception):
    """The input cannot be analysed; ``str(exc)`` is a message fit for the client."""

    status = 400


class InvalidImage(ImageRejected):
    """Empty, corrupt, truncated, or not an image at all."""

    status = 400


class UnsupportedImageFormat(ImageRejected):
    """A real image, but in a format the service does not decode (e.g. HEIC)."""

    status = 415


class ImageTooLarge(ImageRejected):
    """Too many pixels to decode safely (decompression bombs land here)."""

    status = 413


class NoFaceFound(ImageRejected):
    """A valid image in which the detector found no face."""

    status = 422


class ModelUnavailable(RuntimeError):
    """The model file is missing or unreadable: the service cannot predict at all."""
