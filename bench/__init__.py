"""``make bench``: our crawler against the tools a user would reach for, on the same pages."""
