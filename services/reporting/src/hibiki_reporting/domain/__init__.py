"""The rules of the report, free of Kafka, gRPC and SQL."""
