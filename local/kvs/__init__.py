"""A local stand-in for Kinesis Video Streams (control plane, PutMedia with acks, storage, faults)."""

from local.kvs.server import KvsStandIn

__all__ = ["KvsStandIn"]
