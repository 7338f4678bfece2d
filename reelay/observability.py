"""Powertools logger, tracer and metrics, created once and shared by every handler and the worker.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function by the stacks); the metrics
namespace is fixed so every part of Reelay lands on one CloudWatch dashboard.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

METRICS_NAMESPACE = "Reelay"

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)

__all__ = ["METRICS_NAMESPACE", "MetricUnit", "logger", "metrics", "tracer"]
