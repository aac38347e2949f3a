"""The one user-error type (a value a user gave that is not allowed), and the storage fault.

Every check of user input (a trial key, a search-space section, a command-line flag, a data file,
a storage location) raises ``ConfigError`` with one line naming the field, the value and what is
allowed; ``korth-bench`` prints that line and exits with 2 before writing anything. A storage
that fails mid-run (``StorageFault``) is one line too, exit code 75. Any other exception is a bug
(or an environment failure) and keeps its traceback.
"""


class ConfigError(ValueError):
    """A user-supplied value that is not allowed; the message names field, value and choices."""


class IgnoredSetting(UserWarning):
    """A value a user gave that is accepted but has no effect (a coefficient for ``none``);
    ``korth-bench`` prints it as one line."""


class StorageFault(Exception):
    """The storage stopped a command that running it again continues: a full disk, a quota,
    storage that turned read-only or refuses permission, an object store unreachable beyond the
    client's retries (``korth_bench.faults``). The message is one line naming the storage, the
    fault and the command to run once it is cleared; ``korth-bench`` prints it and exits with
    ``EXIT_STORAGE_FAULT``. Not a user error (nothing was wrong with the input) and not a bug."""


EXIT_STORAGE_FAULT = 75
"""``korth-bench``'s exit code for a storage fault, resumable (sysexits' EX_TEMPFAIL)."""
