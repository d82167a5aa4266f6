"""PostgreSQL and pgvector: the k-NN SQL (`knn`), the registry of spaces and their HNSW indexes (`spaces`),
which spaces hold passage rows (`passage_rows`), the embedded server (`embedded_server`, `pgembedded`) and
read replicas (`replicas`)."""
