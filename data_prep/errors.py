"""The one exception type for mistakes a user can fix; the CLI prints it as one line."""


class UserError(Exception):
    """A bad file, key, value or flag: the message names it and says what to do."""
