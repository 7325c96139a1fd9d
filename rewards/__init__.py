"""Composable reward functions for trustworthy counseling replies: one per criterion, weighted and ablated by spec."""

from rewards.base import Context, Reward, RewardBatch, RewardError
from rewards.registry import FunctionReward, get_reward, register, registered

__all__ = ["Context", "FunctionReward", "Reward", "RewardBatch", "RewardError", "get_reward", "register", "registered"]
