"""Sales analytics: aggregation pipelines as plain functions over the record in MongoDB."""
