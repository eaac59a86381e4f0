"""The app's management commands live in :mod:`.commands`."""
