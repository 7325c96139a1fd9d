"""Trainers of the policy LLM: SFT and GRPO/RLOO via TRL (``sft``, ``rl``), and their run configs (``config``)."""
