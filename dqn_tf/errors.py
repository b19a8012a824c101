"""The one exception type for mistakes a user can fix.

Entry points (`main`, `evaluate`, `export`) catch `UserInputError` and print its
message as a single line, exiting non-zero, instead of a traceback. The message
must name the problem and the fix.
"""


class UserInputError(ValueError):
    """Bad flag value, unknown game, missing or foreign checkpoint/SavedModel."""


class OutputWriteError(RuntimeError):
    """A checkpoint or SavedModel could not be written (disk full, I/O error).

    The previous complete checkpoint is intact; training stops so that no
    further progress is made that could not be saved.
    """


class ActorFailure(RuntimeError):
    """A remote actor died and did not come back (it cannot build its envs, it runs out
    of memory, ...): the run stops with a checkpoint and this message."""
