"""Async SQLAlchemy engine, sessions and the one place a transaction commits.

Each service owns one database: on PostgreSQL ``<prefix>_<service>`` on the server named by
``DATABASE_URL`` (created on first start), in the embedded default a SQLite file under ``DATA_DIR``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, TypeDecorator, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.config import ServiceSettings

log = logging.getLogger(__name__)


def server_url(database_url: str) -> URL:
    """The asyncpg form of a PostgreSQL URL (``postgresql://`` is accepted as the contract says)."""
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+asyncpg")
    return url


def service_database_url(settings: ServiceSettings) -> URL:
    """The URL of the service's own database."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return make_url(f"sqlite+aiosqlite:///{(settings.data_dir / f'{settings.service_name}.db').resolve()}")
    url = server_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return url
    return url.set(database=f"{settings.database_prefix}_{settings.service_name}")


async def ensure_database(settings: ServiceSettings) -> None:
    """Create the service's PostgreSQL database if it does not exist yet (idempotent, race-safe)."""
    target = service_database_url(settings)
    if target.get_backend_name() != "postgresql":
        return
    assert settings.database_url is not None
    admin = create_async_engine(server_url(settings.database_url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            )
            if not exists:
                try:
                    await conn.execute(text(f'CREATE DATABASE "{target.database}"'))
                except DBAPIError as exc:  # another replica created it first
                    if "already exists" not in str(exc):
                        raise
    finally:
        await admin.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; busy_timeout makes writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: URL, pool_size: int = 10) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


#: Errors that mean "the database is not reachable right now" rather than "this input is wrong".
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,  # every pooled connection busy: overload, not bad input
    ConnectionError,
    OSError,
)

#: SQLSTATEs of a server going away or not back yet: connection exception (08...), operator intervention
#: (57P01 admin shutdown, 57P02 crash shutdown, 57P03 "the database system is starting up"), too many connections.
_TRANSIENT_SQLSTATES = ("08", "57P", "53300")


def is_transient_db_error(exc: BaseException) -> bool:
    """True when ``exc`` means "the database is not reachable right now" (retry later), not "this is wrong".

    A PostgreSQL restart surfaces as a plain ``DBAPIError`` too (asyncpg's ``CannotConnectNowError`` while
    it replays its WAL, ``ConnectionDoesNotExistError`` for a connection it dropped): its SQLSTATE tells.
    """
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
            sqlstate = getattr(error, "sqlstate", None)
            if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
                return True
    return False


class Database:
    """Owns the engine and the session factory; the only place a transaction is committed."""

    def __init__(self, url: URL, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._after_commit: list[Callable[[], None]] = []
        # SQLite allows one writer: serialising writers in-process avoids "database is locked".
        self._write_lock = asyncio.Lock() if url.get_backend_name() == "sqlite" else None

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after every successful commit (the outbox relay's wake-up)."""
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self, *, notify: bool = True) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on error, then wakes the relay.

        ``notify=False`` skips the after-commit callbacks: for the relay's own transactions, which
        would otherwise wake the relay again after every flush, forever.
        """
        if self._write_lock is not None:
            await self._write_lock.acquire()
        try:
            async with self.sessions() as session, session.begin():
                yield session
        finally:
            if self._write_lock is not None:
                self._write_lock.release()
        if notify:
            for callback in self._after_commit:
                callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (no commit)."""
        async with self.sessions() as session:
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness only reports
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def run_migrations(migrations_dir: Path, url: URL) -> None:
    """Upgrade the database at ``url`` to the newest revision of ``migrations_dir`` (synchronous)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")


async def prepare_database(settings: ServiceSettings, migrations_dir: Path) -> Database:
    """Create (if needed) and migrate the service's database, then open it."""
    await ensure_database(settings)
    url = service_database_url(settings)
    await asyncio.to_thread(run_migrations, migrations_dir, url)
    return Database(url, settings.database_pool_size)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware, on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias, so autoincrement works) on SQLite.
IdType = BigInteger().with_variant(Integer, "sqlite")
