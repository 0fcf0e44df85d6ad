"""The application's errors: one root, :class:`EngineError`, and the exit code of each kind.

Every command of ``python -m engine`` ends on an error with one line on stderr, ``error: <message>``, and the exit
code of its kind; a traceback is for bugs only (and is shown with ``--log-level debug``):

- 0: done;
- 1, :class:`EngineError`: the command failed while it ran (the engine stopped on an error, the local stack did not
  start, a projection failed, an offset is not in the log, PostgreSQL refused a statement);
- 2, :class:`BadInput`: bad usage, settings, file or schema (one that exists, is of another version, or holds no
  audit projection), refused before anything was written;
- 3, :class:`Unreachable`: Kafka or PostgreSQL does not answer, or went away; the same command may pass once it is
  back;
- 130 (:data:`INTERRUPTED`): interrupted by Ctrl-C (SIGINT), after cleaning up.

``diff`` keeps the exit codes of diff(1): 0 equal, 1 different, 2 for anything that kept it from comparing.

The errors of the other packages (``projections``, ``adapters``, ``ops``, the settings) are not subclasses of these:
those packages do not import the shell. :func:`engine_error` maps them to their kind, in one place.
"""

from __future__ import annotations

from typing import ClassVar


class EngineError(Exception):
    """The root of the application's errors: a message fit for one line, and the exit code of the command."""

    exit_code: ClassVar[int] = 1


class BadInput(EngineError):
    """Bad usage, settings, file or schema: refused before anything was written."""

    exit_code = 2


class Unreachable(EngineError):
    """Kafka or PostgreSQL does not answer (or went away while the command ran)."""

    exit_code = 3


INTERRUPTED = 130
"""The exit code after Ctrl-C (128 + SIGINT), as a shell reports a program it interrupted."""


def _kinds() -> dict[type[BaseException], type[EngineError]]:
    """The other packages' errors and their kind (imported here, when an error is to be told, not at start)."""
    from adapters.feeds.recorded import RecordedFileError
    from adapters.kafka import TopicLayoutError
    from adapters.kafka_admin import GroupInUse
    from adapters.postgres import BadIdentifier
    from engine.config import ConfigError
    from ops.stack import StackError
    from projections.audit import SchemaVersionMismatch
    from projections.replay import NotComparable, SchemaExists
    from projections.runner import OffsetNotInLog, ProjectionFailed

    return {
        ConfigError: BadInput,
        RecordedFileError: BadInput,
        TopicLayoutError: BadInput,
        BadIdentifier: BadInput,
        GroupInUse: BadInput,
        SchemaExists: BadInput,
        SchemaVersionMismatch: BadInput,
        NotComparable: BadInput,
        StackError: EngineError,
        OffsetNotInLog: EngineError,
        ProjectionFailed: EngineError,
    }


_NOT_NETWORK = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _server(exc: BaseException) -> str | None:
    """Which server an exception says is unreachable or gone, or None if it says no such thing."""
    import asyncpg
    from aiokafka.errors import KafkaError

    from adapters.outage import is_outage

    if not is_outage(exc) or isinstance(exc, _NOT_NETWORK):
        return None
    if isinstance(exc, KafkaError):
        return "Kafka"
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return "PostgreSQL"
    return "a server"


def engine_error(exc: BaseException) -> EngineError | None:
    """``exc`` as an application error of its kind (the same one if it is one); None for anything else: a bug."""
    if isinstance(exc, EngineError):
        return exc
    kinds = _kinds()
    for cls in type(exc).__mro__:
        kind = kinds.get(cls)
        if kind is not None:
            return _caused(kind(str(exc)), exc)
    server = _server(exc)
    if server is not None:
        return _caused(Unreachable(f"{server} cannot be reached: {describe(exc)}"), exc)
    import asyncpg

    if isinstance(exc, asyncpg.PostgresError):
        return _caused(EngineError(f"PostgreSQL: {describe(exc)}"), exc)
    return None


def describe(exc: BaseException) -> str:
    """``Type: message``, the type once (aiokafka's messages start with it already), no trailing colon."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}".rstrip(": ")


def _caused(err: EngineError, cause: BaseException) -> EngineError:
    err.__cause__ = cause
    return err


__all__ = ["INTERRUPTED", "BadInput", "EngineError", "Unreachable", "describe", "engine_error"]
