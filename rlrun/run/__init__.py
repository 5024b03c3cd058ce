"""The run services every algorithm uses, written once: the `Run` facade (`facade`) in front of
checkpoints (`checkpoints`, files in `checkpoint_files`), evaluations (`evaluations`, the protocol
in `eval_episodes`), stop signals (`signals`), resume (`resume`), the start panel (`start`), and
the run dir's lock, torch threads, seeding, stopping rules and write checks. `launch` holds what a
run starts from (`Launch`) and ends with (`TrainResult`)."""
