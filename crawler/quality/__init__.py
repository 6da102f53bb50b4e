"""Data quality of a run: the checks across runs (``crawler.quality.checks``)."""
