"""Language-model user encoder: pretrained MiniLM, fine-tuning (full and LoRA), env states."""
