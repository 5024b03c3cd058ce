"""Stateful training helpers: gradient steps, epochs of shuffled minibatch steps, target-network
sync, exploration noise processes, reward-model fitting."""
