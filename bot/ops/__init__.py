"""One module per operation; importing this package registers them all."""

from bot.ops import backup, cache, dbreset, deploy, restart  # noqa: F401
