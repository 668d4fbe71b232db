"""The bottom layer, imported by every other package and importing none of ours: the
settings, the errors every domain shares, which failures are outages, the request id."""
