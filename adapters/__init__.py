"""I/O shared by every entry point, grouped by what it talks to: db, facesign, mail, queue."""
