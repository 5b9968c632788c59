from hibiki_runtime.db import run_migrations_online

run_migrations_online()
