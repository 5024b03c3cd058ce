"""Policies out of checkpoints: rebuilding the acting policy of any rlrun checkpoint (`rebuild`,
for `rlrun-eval`, `rlrun.load` and imitation experts) and self-contained TorchScript or ONNX files
(`formats`)."""
