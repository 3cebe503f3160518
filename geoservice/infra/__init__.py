"""Infrastructure, apart from the domain: the database and its embedded cluster, backups, LISTEN, logs and metrics."""
