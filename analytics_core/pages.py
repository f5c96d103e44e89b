"""The dashboard's page names and the file formats a page exports.

Kept apart from ``page_data`` and ``exports`` so that the command line can list them
without importing the query and statistics stacks.
"""

PAGES = ("overview", "detection", "performance", "business", "insights")
EXPORT_FORMATS = ("json", "csv")
