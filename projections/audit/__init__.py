"""The audit projection: every event and the facts folded from them, in PostgreSQL (see docs/audit-schema.md)."""

from projections.audit.projection import (
    ROLES_SQL,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    AuditProjection,
    SchemaVersionMismatch,
    create_schema,
    schema_version,
)

__all__ = [
    "ROLES_SQL",
    "SCHEMA_SQL",
    "SCHEMA_VERSION",
    "AuditProjection",
    "SchemaVersionMismatch",
    "create_schema",
    "schema_version",
]
