"""Data sources, one module each: ``database`` (PostgreSQL or DuckDB) today;
Prometheus and the Redis cache join beside it."""
