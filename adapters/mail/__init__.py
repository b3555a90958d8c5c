"""Email: composing messages and handing them to the configured backend."""
