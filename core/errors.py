"""Exceptions raised by the S1S2 core.

Every message names the input and says what was expected, so the Processing
wrapper can show it to the user unchanged.
"""


class S1S2Error(Exception):
    """An error the user can act on (bad input, mismatched grids, missing band...)."""


class Cancelled(S1S2Error):
    """The run was cancelled through the cancel callback; no output was kept."""

    def __init__(self, message="Cancelled by the user; no output was written."):
        super().__init__(message)
