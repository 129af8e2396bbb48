"""Administration: users (deactivation, admin rights, 2FA resets), reports, the audit log."""
