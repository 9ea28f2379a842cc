"""Rollout: shadow comparison and its report, drift profiles and checks, release bundles."""
