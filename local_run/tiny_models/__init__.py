"""Tiny random-weight stand-ins for the served models, so a stack's real Serve config runs on a laptop CPU.

What it builds: for a model source such as ``deepseek-ai/DeepSeek-R1``, a Hugging Face model directory of
the SAME architecture (``DeepseekV3ForCausalLM``, ``Qwen2ForCausalLM`` or ``LlamaForCausalLM``) but about
0.4-1.2 million random bf16 parameters: hidden size 128, 2 layers, a 512-token byte-level BPE vocabulary
trained here on a generated corpus, a chat template, and the ``<think>`` / ``</think>`` tokens that
vLLM's ``deepseek_r1`` reasoning parser requires. Nothing is downloaded: the build works offline
(``HF_HUB_OFFLINE=1``).

Why the same architecture: vLLM picks its code paths from ``config.json``, so a tiny DeepSeek-V3 model
exercises what DeepSeek-R1 does in production (MLA attention with the 512 + 64 latent KV cache, MoE with
sigmoid scoring, grouped ``noaux_tc`` top-k, a shared expert and a dense first layer, YaRN rope), and a
tiny Qwen2 / Llama model what the R1 distills do. The output is random text; what is tested is that the
stack's engine settings, the reasoning parser, the chat template and the OpenAI API path all work.

How long: about 4 s for the first model in a fresh process on 2 cores, of which ~3.5 s is importing torch
and transformers; each further architecture in the same process takes well under a second. The result
(0.9-2.3 MB) is cached under `default_cache_dir()` by architecture and `BUILD_VERSION`, so later calls
return at once. The same seed gives byte-identical files on every build.

The parts: which architecture stands in for which source (`families.py`), the tiny model of each
architecture (`specs.py`), the tokenizer, chat template and training corpus (`tokenizer.py`), and the build
and its cache (`build.py`). The public names are importable from `local_run.tiny_models`.

Deploy-time importable: torch, transformers and tokenizers are imported inside the functions that build,
so `architecture_for` works where only the standard library is installed. Example::

    from local_run.tiny_models import default_cache_dir, tiny_model_for

    path = tiny_model_for("deepseek-ai/DeepSeek-R1", default_cache_dir())
    # vllm.LLM(model=str(path), dtype="bfloat16", max_model_len=256, enforce_eager=True)
"""

from local_run.tiny_models.build import (
    BUILD_VERSION,
    CACHE_ENV_VAR,
    MANIFEST,
    build_tiny_model,
    default_cache_dir,
    tiny_model_for,
)
from local_run.tiny_models.families import (
    ARCHITECTURES,
    SUPPORTED,
    ModelFamily,
    UnsupportedModelError,
    architecture_for,
)
from local_run.tiny_models.specs import SEED
from local_run.tiny_models.tokenizer import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    ROLE_TOKENS,
    THINK_END,
    THINK_START,
    VOCAB_SIZE,
)

__all__ = [
    "ARCHITECTURES",
    "BOS",
    "BUILD_VERSION",
    "CACHE_ENV_VAR",
    "CHAT_TEMPLATE",
    "EOS",
    "MANIFEST",
    "PAD",
    "ROLE_TOKENS",
    "SEED",
    "SUPPORTED",
    "THINK_END",
    "THINK_START",
    "VOCAB_SIZE",
    "ModelFamily",
    "UnsupportedModelError",
    "architecture_for",
    "build_tiny_model",
    "default_cache_dir",
    "tiny_model_for",
]
