"""The rollout half: release and rollback, shadow mode, drift detection."""
