"""The one exception type for mistakes a user can fix.

Entry points (`main`, `evaluate`, `export`) catch `UserInputError` and print its
message as a single line, exiting non-zero, instead of a traceback. The message
must name the problem and the fix.
"""


class UserInputError(ValueError):
    """Bad flag value, unknown game, missing or foreign checkpoint/SavedModel."""
