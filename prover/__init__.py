"""pacda Prover: tasks, the batched training farm, the result store and executors."""
