"""I/O shared by every entry point: database, FaceSign API client, mailer, broker."""
