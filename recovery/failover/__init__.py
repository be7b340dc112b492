"""Failover runbooks: ordered steps that workers execute and time (issue 5)."""
