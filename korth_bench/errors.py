"""The one user-error type: a value a user gave that is not allowed.

Every check of user input (a trial key, a search-space section, a command-line flag, a data file,
a storage location) raises ``ConfigError`` with one line naming the field, the value and what is
allowed; ``korth-bench`` prints that line and exits with 2 before writing anything. Any other
exception is a bug (or an environment failure) and keeps its traceback.
"""


class ConfigError(ValueError):
    """A user-supplied value that is not allowed; the message names field, value and choices."""


class IgnoredSetting(UserWarning):
    """A value a user gave that is accepted but has no effect (a coefficient for ``none``);
    ``korth-bench`` prints it as one line."""
