"""Live relay: streams, the supervisor, source pipelines and kvssink."""
