"""The one exception type for mistakes a user can fix; the CLI prints it as one line."""


class UserError(Exception):
    """A bad file, key, value or flag: the message names it and says what to do. Line breaks in it (e.g. from a
    library's message it quotes) become spaces, so that it stays one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
