"""End to end through the model store: `python -m local_run dev --weights-store`.

The dev stack's tiny models are staged into a GCS emulator on 127.0.0.1 by the real stager, read back,
checked against their manifest like a GPU worker does, and served from that copy by Ray Serve LLM + vLLM.

Run in the heavy environment (requirements/local.txt):
    .venv-local/bin/python -m pytest -m e2e tests/e2e
"""

from __future__ import annotations

import pytest

from local_run.errors import LocalRunError
from local_run.launcher import LaunchedServer
from local_run.server import free_port

pytestmark = pytest.mark.e2e

MODELS = ["deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b"]


@pytest.fixture(scope="module")
def launched(no_dev_server):
    server = LaunchedServer("dev", free_port(), ready_timeout_s=600, extra_args=["--weights-store"])
    try:
        info = server.wait_ready()
    except LocalRunError as error:
        server.stop()
        pytest.fail(f"the local dev server with --weights-store did not come up: {error}")
    yield server, info
    assert server.stop() == 0, server.output[-4000:]


def test_models_are_staged_checked_and_served_from_the_store(launched):
    import openai

    server, info = launched
    for model in MODELS:
        assert f"staged {model}: " in server.output and "(emulator); serving from " in server.output
    assert server.output.count("weights ok: ") == len(MODELS)
    client = openai.OpenAI(base_url=info["base_url"], api_key=info["api_key"], timeout=300, max_retries=0)
    for model in MODELS:
        response = client.completions.create(model=model, prompt="The sky is", max_tokens=4)
        assert response.model == model and response.choices[0].text is not None
