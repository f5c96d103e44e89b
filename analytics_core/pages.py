"""The dashboard's page names and the file formats a page exports.

Kept apart from ``page_data`` and ``exports`` so that the command line and the config
can list them without importing the query and statistics stacks.
"""

PAGES = ("overview", "detection", "performance", "business", "insights")
# The app's pages: the data pages, the admins' audit log and the sources' health.
APP_PAGES = (*PAGES, "audit", "health")
EXPORT_FORMATS = ("json", "csv", "xlsx", "pdf")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
