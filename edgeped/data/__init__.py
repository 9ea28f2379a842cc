"""Datasets: the record schema, generators, importers, shard I/O and the input pipeline."""
