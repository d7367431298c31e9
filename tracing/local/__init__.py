"""Local stand-ins for AWS infrastructure (e.g. a real Lambda execution environment)."""
