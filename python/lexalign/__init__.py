"""LexAlign: download, LoRA fine-tune and DPO-align language models from YAML configs."""

__version__ = "0.1.0"
