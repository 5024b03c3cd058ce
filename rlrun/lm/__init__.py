"""Language-model RL (book ch. 14-15): the synthetic task env=lm and the pipeline of ppo_lm and grpo."""
