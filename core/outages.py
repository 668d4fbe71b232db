"""Which errors mean a store is out of reach (down, restarting, too slow), as opposed to a
store refusing what it was sent. An outage is answered SERVICE_UNAVAILABLE ("try again");
anything else is a bug and stays an internal error."""

import pymongo.errors
import redis.exceptions

# How answers name the stores (in "... is unavailable: try again").
MONGODB = "the order store (MongoDB)"
REDIS = "the stock store (Redis)"

_REDIS_OUTAGES = (
    redis.exceptions.ConnectionError,  # also BusyLoadingError (loading its data after a start)
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ReadOnlyError,  # a replica that has not been promoted yet
    redis.exceptions.OutOfMemoryError,  # full (maxmemory reached): writes refused
    redis.exceptions.MaxConnectionsError,  # this process's pool is exhausted
)


def mongodb_outage(error: BaseException) -> bool:
    """MongoDB could not be reached or did not answer in time."""
    if not isinstance(error, pymongo.errors.PyMongoError):
        return False
    return (
        error.timeout
        or isinstance(error, pymongo.errors.ConnectionFailure)  # incl. server selection
        or error.has_error_label("TransientTransactionError")
        or error.has_error_label("RetryableWriteError")
    )


def redis_outage(error: BaseException) -> bool:
    """Redis could not be reached, is loading, or did not answer in time."""
    return isinstance(error, _REDIS_OUTAGES)


def unavailable_store(error: BaseException) -> str | None:
    """The name of the store an error says is unavailable, or None if it is not an outage."""
    if mongodb_outage(error):
        return MONGODB
    if redis_outage(error):
        return REDIS
    return None
