"""One module per operation; importing this package registers them all."""

from bot.ops import deploy  # noqa: F401
