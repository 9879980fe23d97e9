"""The one exception type for problems a user can fix (bad file, unknown column, ...)."""


class UserInputError(ValueError):
    """A problem with what the user gave us; the CLI prints it as one line and exits with code 2."""
