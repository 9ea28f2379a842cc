"""Scale-out: the data pipeline, Apache Beam, sharding checks."""
