"""Alembic environment: runs on the connection that ``geoservice.infra.database.migrate`` passes in."""

from alembic import context

from layers import forces as forces  # its tables share Base.metadata: compared and created like the others
from layers.models import Base

connection = context.config.attributes["connection"]


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # PostGIS's own tables (spatial_ref_sys, topology…) live in the same schema: leave them alone.
    return not (type_ == "table" and reflected and compare_to is None)


context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True, include_object=_ours)
with context.begin_transaction():
    context.run_migrations()
