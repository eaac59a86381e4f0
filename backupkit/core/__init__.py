"""The pure core: manifests, catalog, retention and restore planning.

Nothing in this package reads the clock, the environment, the filesystem or the
network. Time is passed in as an argument; errors come from :mod:`backupkit.errors`.
"""
