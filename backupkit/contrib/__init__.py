"""Integrations with host frameworks: :mod:`backupkit.contrib.django` (a Django app)."""
