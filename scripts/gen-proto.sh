#!/usr/bin/env bash
# Regenerate the Workload API stubs in src/tabard/node/_proto from proto/workload.proto.
#
# Needs grpcio-tools (a dev extra). Two edits follow protoc, both needed at run time:
#  1. The messages go into a private descriptor pool, not protobuf's default one. The proto
#     has no package (the spec's service name is the bare `SpiffeWorkloadAPI`), so its message
#     names are global; any other copy of the Workload API proto loaded in the same process
#     (py-spiffe ships one) would otherwise clash with "duplicate symbol 'X509SVIDRequest'".
#     The wire format does not depend on the pool.
#  2. The gRPC module imports the messages by their package path, not as a top-level module.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
out="$root/src/tabard/node/_proto"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m grpc_tools.protoc -I"$root/proto" \
  --python_out="$work" --pyi_out="$work" --grpc_python_out="$work" \
  "$root/proto/workload.proto"

"$python" - "$work" <<'PY'
import pathlib
import sys

work = pathlib.Path(sys.argv[1])
pb2 = work / "workload_pb2.py"
text = pb2.read_text()
old = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
if text.count(old) != 1:
    sys.exit("gen-proto: unexpected protoc output (descriptor pool line)")
text = text.replace(
    old,
    "_POOL = _descriptor_pool.DescriptorPool()\n"
    "_POOL.AddSerializedFile(google_dot_protobuf_dot_struct__pb2.DESCRIPTOR.serialized_pb)\n"
    "DESCRIPTOR = _POOL.AddSerializedFile(",
)
text = text.replace(
    "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'workload_pb2', _globals)",
    "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'tabard.node._proto.workload_pb2', _globals)",
)
pb2.write_text(text)

grpc_py = work / "workload_pb2_grpc.py"
text = grpc_py.read_text()
old = "import workload_pb2 as workload__pb2"
if text.count(old) != 1:
    sys.exit("gen-proto: unexpected protoc output (gRPC import line)")
grpc_py.write_text(text.replace(old, "from tabard.node._proto import workload_pb2 as workload__pb2"))
PY

mkdir -p "$out"
cp "$work/workload_pb2.py" "$work/workload_pb2.pyi" "$work/workload_pb2_grpc.py" "$out/"
cat > "$out/__init__.py" <<'PY'
"""Generated Workload API stubs (scripts/gen-proto.sh from proto/workload.proto); do not edit."""

__all__: list[str] = []
PY
echo "generated $out"
