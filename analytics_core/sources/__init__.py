"""Data sources, one module each: ``database`` (PostgreSQL or DuckDB) today;
Prometheus and the Redis cache join beside it."""


class SourceUnavailable(RuntimeError):
    """A data source could not be reached or read; says which and how to fix it."""

    def __init__(self, source: str, detail: str, hint: str):
        self.source, self.detail, self.hint = source, detail, hint
        super().__init__(f"{source} is unavailable: {detail}. {hint}")
