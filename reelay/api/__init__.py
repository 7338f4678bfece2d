"""The HTTP API: route table, request/response models and the Powertools resolver."""
