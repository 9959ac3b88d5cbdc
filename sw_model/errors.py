"""The one exception type for bad input (a bad file, flag, trace line or value).

The command line turns it into one line on stderr and exit status 2.
"""


class InputError(Exception):
    """Bad input from the user. ``str(err)`` is the whole one-line message."""
