"""Local stand-ins for external platforms (the fake LINE Messaging API) used by tests, benchmarks and the simulator."""
