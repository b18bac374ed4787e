"""The one error type users see: a single line naming the file/row/column and what to do.

Anything raised as UserError is printed without a traceback and exits with status 2; every other
exception is a bug and keeps its traceback. The line is one line whatever the input held: white
space is folded, and control characters that a file name, URL or caption may carry (terminal
escapes, carriage returns) are shown escaped, never sent to the user's terminal.
"""


def printable(text: str) -> str:
    """`text` with control characters shown as escapes, safe to print to a terminal."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


class UserError(Exception):
    """Bad input or setup, explained in one line."""

    def __init__(self, message: str):
        super().__init__(printable(" ".join(str(message).split())))
