class RateLimitUnavailable(Exception):
    """The store behind the limits (Redis) did not answer in time; the caller decides
    whether to let the request through (reads) or refuse it (writes)."""
