"""The tiny models' tokenizer, the same for every architecture: a byte-level BPE of about `VOCAB_SIZE` tokens
trained on a generated, seeded corpus, with R1's kind of special tokens, the `<think>` tokens and an R1-style
chat template.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from local_run.tiny_models.specs import SEED

if TYPE_CHECKING:  # imported where a tokenizer is built: only the heavy local environment has transformers
    from transformers import PreTrainedTokenizerFast

# Special tokens, in id order: the trainer puts them first, so their ids are stable.
BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
ROLE_TOKENS: Mapping[str, str] = MappingProxyType(
    {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
)
# Plain (not special) added tokens, as in R1's tokenizer: decoding with skip_special_tokens keeps them in
# the text, where the reasoning parser looks for them.
THINK_START, THINK_END = "<think>", "</think>"
VOCAB_SIZE = 512
"""Target vocabulary, special and think tokens included (the trained BPE may come out slightly smaller)."""

# R1's format: BOS, system prompt, user turns, assistant turns closed by EOS; the generation prompt opens
# the reasoning block with "<think>\n" (R1 and its distills force it). Reasoning in earlier assistant
# turns is dropped, as R1's template does. Every stand-in uses it: they stand in for R1 and its distills.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- '<|system|>' + content -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user|>' + content -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- if '</think>' in content -%}{%- set content = content.split('</think>')[-1].lstrip() -%}{%- endif -%}"
    "{{- '<|assistant|>' + content + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('the tiny chat template supports the roles system, user and assistant; got '"
    " + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|><think>\\n' -}}{%- endif -%}"
)


def build_tokenizer(model_max_length: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `_corpus()`, as a transformers PreTrainedTokenizerFast."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [BOS, EOS, PAD, *ROLE_TOKENS.values()]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 2,  # room for the think tokens
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in (THINK_START, THINK_END)])
    # Like Llama 3's and R1's tokenizers: plain encodes (/v1/completions) start with BOS; chat prompts
    # carry it in the template and are encoded without special tokens.
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS.values()),
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


# The corpus's words, in a fixed order (the seeded choices index into it). Kept as a paragraph: the formatter
# would give each word its own line.
# fmt: off
_WORDS = [
    "the", "a", "an", "of", "to", "in", "on", "for", "with", "and", "or", "but", "not", "is", "are", "was", "be",
    "been", "it", "this", "that", "these", "those", "model", "token", "tokens", "serve", "serving", "request",
    "response", "reply", "answer", "question", "reason", "reasoning", "think", "step", "first", "then", "next",
    "finally", "because", "therefore", "so", "if", "else", "when", "while", "cluster", "node", "nodes", "gpu",
    "gpus", "memory", "cache", "latency", "throughput", "batch", "prompt", "completion", "chat", "user",
    "assistant", "system", "message", "hello", "world", "please", "thanks", "yes", "no", "maybe", "number", "sum",
    "total", "count", "value", "result", "check", "test", "tests", "error", "retry", "deploy", "stack", "config",
    "replica", "replicas", "expert", "experts", "layer", "layers", "attention", "head", "heads", "weight",
    "weights", "small", "large", "fast", "slow", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine", "ten", "hundred", "thousand", "time", "minute", "second", "day", "what", "why", "how", "which", "where",
    "who", "can", "could", "should", "would", "will", "may", "must", "do", "does", "did", "make", "made", "run",
    "runs", "python", "json", "yaml", "http", "api", "key", "keys", "list", "map", "string", "integer", "float",
    "true", "false", "null", "none",
]
# fmt: on
_PUNCTUATION = (".", ",", "?", "!", ":", ";", " -", "...")
_SNIPPETS = (
    '{"role": "user", "content": "%s"}',
    "def %s(x):\n    return x + 1\n",
    "- %s\n",
    "**%s**",
    "`%s`",
    "(%s)",
    "# %s\n",
    "1. %s\n2. %s\n",
)


def _corpus(size: int = 40_000) -> list[str]:
    """About `size` characters of generated text (seeded, so always the same): words, numbers, code-ish
    snippets and every printable ASCII character, so that no common input falls back to raw bytes only."""
    rng = random.Random(SEED)
    lines: list[str] = ["".join(chr(code) for code in range(32, 127))]
    total = 0
    while total < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 10_000)))
        sentence = " ".join(words).capitalize() + rng.choice(_PUNCTUATION)
        if rng.random() < 0.2:
            snippet = rng.choice(_SNIPPETS)
            sentence += " " + snippet % ((rng.choice(_WORDS),) * snippet.count("%s"))
        lines.append(sentence)
        total += len(sentence) + 1
    return lines
