"""Outbound HTTP to providers: one pooled client per process, credentials, error mapping."""
