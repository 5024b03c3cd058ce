"""Stateful training helpers: gradient steps, epochs of shuffled minibatch steps, reward-model
fitting."""
