"""The database: the engine handle, the tables, and the queries and commands of each table."""
