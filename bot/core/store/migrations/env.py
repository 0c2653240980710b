"""Alembic environment: the engine comes from bot.core.store.db (never from an ini file)."""

from alembic import context

from bot.core.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
