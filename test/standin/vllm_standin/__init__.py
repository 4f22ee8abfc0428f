"""vllm-standin: a TEST STAND-IN for vLLM's OpenAI-compatible server.

It is NOT vLLM and runs no model. pulumi-vllm's host tests install it (as a
real wheel, through the same `uv pip install` path as vLLM) and run it as the
`vllm` console script inside the systemd unit, because the test machines have
no GPU and cannot install vLLM. It speaks vLLM's /health, /v1/models,
/v1/chat/completions and /metrics, logs vLLM-like startup progress, records its
argv and environment to a file, and refuses flags vLLM removed.
Python standard library only.
"""

DIST_NAME = "vllm-standin"
OWNED_BY = "pulumi-vllm-standin"


def version():
    try:
        from importlib.metadata import version as _v  # Python >= 3.8
        return _v(DIST_NAME)
    except Exception:  # running from the source tree
        import os
        return os.environ.get("VLLM_STANDIN_VERSION", "0.0.0+source")
