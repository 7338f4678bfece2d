"""Recording: live streams to object stores, and each finished session into a video."""
