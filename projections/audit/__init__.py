"""The audit projection: every event and the orders, fills and positions folded from them, in PostgreSQL."""

from projections.audit.projection import SCHEMA_SQL, AuditProjection, create_schema

__all__ = ["SCHEMA_SQL", "AuditProjection", "create_schema"]
