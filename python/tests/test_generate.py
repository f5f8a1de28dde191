"""generate and export as a user meets them: a Llama-architecture chat model whose tokenizer
returns token_type_ids, the chat template applied (or not, with --raw), sampling options,
dry runs, and usage errors that click reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, run_cli_here
from tiny import build_tiny_llama


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def test_prompt_goes_through_the_chat_template_and_only_forward_inputs_remain(tiny_llama):
    from transformers import AutoTokenizer

    from lexalign.inference import prompt_ids

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert "token_type_ids" in tok("hi"), "the tokenizer under test returns token_type_ids"
    chat = prompt_ids(tok, "what is a clause?")
    assert set(chat) == {"input_ids", "attention_mask"}
    text = tok.decode(chat["input_ids"][0])
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n"), text
    raw = prompt_ids(tok, "what is a clause?", raw=True)
    assert tok.decode(raw["input_ids"][0]) == "what is a clause?"


def test_generate_on_a_llama_chat_model(tmp_path, tiny_llama):
    r = run_cli_here(
        "generate", "--model", str(tiny_llama), "--prompt", "what is a clause?",
        "--max-new-tokens", "4", cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.output
    assert "token_type_ids" not in r.output
    r = run_cli_here(
        "generate", "--model", str(tiny_llama), "--prompt", "the court", "--raw",
        "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "4",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.output
    first = next(json.loads(x) for x in r.stdout.splitlines() if '"completion"' in x)
    again = run_cli_here(
        "generate", "--model", str(tiny_llama), "--prompt", "the court", "--raw",
        "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "4",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    second = next(json.loads(x) for x in again.stdout.splitlines() if '"completion"' in x)
    assert first["completion"] == second["completion"], "--seed makes sampling repeatable"


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "exactly one of --model"),
        (["--model", "m", "--adapter", "a"], "exactly one of --model"),
        (["--model", "m", "--base", "b"], "--base goes with --adapter"),
        (["--model", "m", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["--model", "m", "--top-p", "0"], "--top-p"),
        (["--model", "m", "--temperature", "-1"], "--temperature"),
    ],
)
def test_generate_usage_errors_exit_2(tmp_path, args, message):
    r = run_cli_here("generate", *args, "--prompt", "x", cwd=tmp_path)
    assert r.code == 2, r.output
    assert message in r.stderr, r.stderr


def test_generate_and_export_dry_runs_load_and_write_nothing(tmp_path, tiny_llama):
    r = run_cli_here(
        "generate", "--model", str(tiny_llama), "--prompt", "x", "--dry-run", cwd=tmp_path
    )
    assert r.code == 0, r.output
    assert "dry run" in r.output
    r = run_cli_here("generate", "--model", str(tmp_path / "nope"), "--prompt", "x", "--dry-run",
                cwd=tmp_path)  # fmt: skip
    assert r.code == 2, r.output
    r = run_cli_here("export", "--adapter", str(tmp_path / "nope"), "--output", "x", "--dry-run",
                cwd=tmp_path)  # fmt: skip
    assert r.code == 2 and "not found" in r.stderr, r.output
    assert not (tmp_path / "x").exists()


def test_token_file_is_accepted_by_every_cli_that_loads_from_the_hub(tmp_path):
    for cli in ("download", "finetune", "align", "export", "generate"):
        r = run_cli_here(cli, "--help", cwd=tmp_path)
        assert "--token-file" in r.stdout, cli


@pytest.mark.integration
def test_llama_chat_chain_finetune_align_export_generate(tmp_path, tiny_llama):
    """finetune on `messages` → align on conversational preference pairs → export → generate,
    on a Llama-architecture chat model (the path a user reported failing at the last step)."""
    from tiny import chat_rows, write_jsonl

    write_jsonl(tmp_path / "chat.jsonl", chat_rows(16))
    prefs = [
        {
            "prompt": [{"role": "user", "content": r["messages"][0]["content"]}],
            "chosen": [{"role": "assistant", "content": "helpful polite answer."}],
            "rejected": [{"role": "assistant", "content": "rude harmful answer."}],
        }
        for r in chat_rows(16)
    ]
    write_jsonl(tmp_path / "prefs.jsonl", prefs)
    train = (
        "training: {max_steps: 2, batch_size: 2, max_length: 64, logging_steps: 1, save_steps: 2}\n"
    )
    (tmp_path / "sft.yaml").write_text(
        f"model: {tiny_llama}\ndataset: {{path: chat.jsonl, messages_field: messages}}\n"
        f"output_dir: out/sft\n{train}"
    )
    (tmp_path / "dpo.yaml").write_text(
        f"model: {tiny_llama}\nadapter: out/sft\ndataset: {{path: prefs.jsonl}}\n"
        f"output_dir: out/dpo\n{train}"
    )
    for cli, cfg in (("finetune", "sft.yaml"), ("align", "dpo.yaml")):
        r = run_cli(cli, "--config", cfg, cwd=tmp_path)
        assert r.code == 0, r.output
    r = run_cli("export", "--adapter", "out/dpo", "--output", "out/merged", cwd=tmp_path)
    assert r.code == 0, r.output
    r = run_cli(
        "generate", "--model", "out/merged", "--prompt", "what is a clause?",
        "--max-new-tokens", "4", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.output
    assert any('"completion"' in line for line in r.stdout.splitlines()), r.stdout
