"""Built-in transform plugins."""
