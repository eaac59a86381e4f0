"""``backupkit_backup``, ``backupkit_restore``, ``backupkit_list`` and ``backupkit_run``."""
