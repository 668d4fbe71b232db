"""The reservation engine: stock, holds, expiry, checkout and reconciliation.

Hot state lives in Redis and changes only through one Lua script per transition; MongoDB is
the system of record. This package does not know about HTTP or GraphQL.
"""
