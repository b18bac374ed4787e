"""The one error type users see: a single line naming the file/row/column and what to do.

Anything raised as UserError is printed without a traceback and exits with status 2; every other
exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or setup, explained in one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
