"""Generated Workload API stubs (scripts/gen-proto.sh from proto/workload.proto); do not edit."""

__all__: list[str] = []
