"""The audit projection: every event and the facts folded from them, in PostgreSQL (see docs/audit-schema.md)."""

from projections.audit.projection import ROLES_SQL, SCHEMA_SQL, AuditProjection, create_schema

__all__ = ["ROLES_SQL", "SCHEMA_SQL", "AuditProjection", "create_schema"]
