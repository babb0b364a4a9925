"""User-facing errors: the command line prints them as one line and exits non-zero."""


class PTQError(Exception):
    """Bad input or an unsupported request; the message is one line meant for the user."""


class ConfigError(PTQError):
    """A config key is unknown, missing or has an invalid value."""


class DataError(PTQError):
    """A data file or folder is missing or malformed."""


class CheckpointError(PTQError):
    """A checkpoint is missing, corrupt or does not match the config."""


class UnsupportedLayerError(PTQError):
    """A layer type has no quantized counterpart."""


class InvariantError(PTQError):
    """The quantized model is not in a valid state for evaluation."""


class ReportError(PTQError):
    """Results cannot be put in one table: missing, malformed, or measured under different protocols."""
