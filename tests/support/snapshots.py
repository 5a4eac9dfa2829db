"""A generated fake model snapshot for the staging tests: safetensors shards with an index, config, generation
config and tokenizer files, as a Hugging Face snapshot folder holds them."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def _safetensors(tensors: dict[str, tuple[list[int], int]], seed: int) -> bytes:
    """A valid safetensors file of F32 tensors filled with deterministic bytes."""
    header, offset, payload = {}, 0, bytearray()
    for name, (shape, _) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        size = count * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        payload += (
            bytes((seed * 31 + i * 7) % 251 for i in range(size))
            if size < 4096
            else (bytes(range(seed % 200, seed % 200 + 50)) * (size // 50 + 1))[:size]
        )
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + bytes(payload)


def make_snapshot(root: Path, shards: int = 4, shard_floats: int = 150_000) -> Path:
    """A fake multi-shard model snapshot (~0.6 MB per shard, ~2.4 MB in all, by default): safetensors shards with an
    index, config, generation config and tokenizer files."""
    root.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for shard in range(1, shards + 1):
        name = f"model-{shard:05d}-of-{shards:05d}.safetensors"
        tensors = {
            f"model.layers.{shard}.mlp.weight": ([shard_floats // 100, 100], 0),
            f"model.layers.{shard}.norm.weight": ([100], 0),
        }
        (root / name).write_bytes(_safetensors(tensors, shard))
        weight_map.update(dict.fromkeys(tensors, name))
    (root / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "metadata": {"total_size": sum((root / n).stat().st_size for n in set(weight_map.values()))},
                "weight_map": weight_map,
            },
            indent=1,
        )
    )
    (root / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 100,
                "num_hidden_layers": shards,
            }
        )
    )
    (root / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.6}))
    (root / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}}))
    (root / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}))
    (root / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return root
