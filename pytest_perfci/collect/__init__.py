"""Gatherers: the I/O half of the checks. Each runs commands on a Host and returns raw or parsed data."""
