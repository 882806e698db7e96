"""The one exception type that reaches the user as a sentence, not a traceback."""


class UserError(Exception):
  """A problem with the user's input (data, config, command line).

  The CLI prints ``str(error)`` alone and exits with status 2. The message must say what is
  wrong and where (the path, the config key, the value), in one or two sentences.
  """
