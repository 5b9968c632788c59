"""`python -m hibiki_runtime.migrate <module>`: apply a service's migrations once (Job or init container).

Reads HIBIKI_DATABASE_URL (and HIBIKI_SERVICE_NAME / HIBIKI_DATA_DIR for the SQLite default) like the service
itself. Exit code 0 when the database is at head, 1 with the error on stderr otherwise.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path

from hibiki_runtime.db import create_engine, upgrade_to_head
from hibiki_runtime.settings import ServiceSettings


def migrations_dir(module: str) -> Path:
    """The migrations folder shipped inside a service package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"no such service module: {module}")
    path = Path(spec.origin).parent / "migrations"
    if not path.is_dir():
        raise SystemExit(f"{module} has no migrations folder at {path}")
    return path


async def migrate(module: str, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade_to_head(engine, migrations_dir(module))
    finally:
        await engine.dispose()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m hibiki_runtime.migrate <service module, e.g. hibiki_routing>")
    module = sys.argv[1]
    default_name = module.removeprefix("hibiki_").replace("_", "-")
    settings = (
        ServiceSettings()
        if "HIBIKI_SERVICE_NAME" in os.environ
        else ServiceSettings(service_name=default_name)
    )
    asyncio.run(migrate(module, settings.resolved_database_url))
    print(f"{module}: database at head")


if __name__ == "__main__":
    main()
