"""Observability from chat: the guide's metrics, SLOs, logs and traces (Prometheus, Loki, Jaeger, Grafana)."""
