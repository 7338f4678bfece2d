"""The catalogue (videos, live relay streams, the event outbox): MySQL adapter, migrations,
rotating-secret connections and an in-memory fake."""

from reelay.catalogue.connection import ConnectionProvider, DatabaseUnavailable
from reelay.catalogue.memory import MemoryCatalogue
from reelay.catalogue.migrations import migrate
from reelay.catalogue.mysql import MySQLCatalogue

__all__ = ["ConnectionProvider", "DatabaseUnavailable", "MemoryCatalogue", "MySQLCatalogue", "migrate"]
