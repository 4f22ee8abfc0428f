#!/usr/bin/env bash
# pulumi-vllm host step library: vLLM's own startup figures of one start,
# picked from its log (weights loaded, available KV memory, KV cache size,
# maximum concurrency, CUDA graph memory) for a readiness gate to print; the
# server exports them as `measured` (components/plan/measured.ts parses them
# and lists each release's formats: keep MEASURE_RE in step with its RULES;
# test/unit/measured.test.ts fails when a line the parser reads, of the
# public case set or of the stand-in, does not pass this filter). Included
# like lib/txn.sh (see there). Needs from the step:
# redact (lib/redact.sh) and its SECRET_VALUES.

MEASURE_RE='Model loading took [-0-9.]+ GiB|Loading model weights took|model weights take|Available KV cache memory:|kv_cache_size=|reserved for KV Cache is|available_kv_cache_memory|Current kv cache memory in use is|KV cache size: [0-9,]+ tokens|(GPU|CUDA|cuda) blocks: [0-9]+|Maximum concurrency for|Estimated CUDA graph memory:|Graph capturing finished in'

# stdin (one start's log) -> stdout: its figure lines as `vllm: <line>`,
# redacted, at most $1 of them (default 64: with TP/PP every worker prints its
# own, and the step's output goes to the stack's state).
measured_lines() {
  local max=${1:-64}
  grep -E -- "$MEASURE_RE" | head -n "$max" | redact | sed 's/^/vllm: /' || true
}
