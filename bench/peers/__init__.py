"""The contestants: each one a small script fetching a URL file and extracting four fields.

Every script prints one JSON line at the end (``extract.report``): pages fetched, pages with
all four fields, errors, and the seconds from its first request to its last answer.
"""
