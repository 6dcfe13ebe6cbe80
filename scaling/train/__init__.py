"""The training wing: run configs, optimizer and loss, born-sharded state, the jitted step, evaluation,
checkpoints, run directories, MFU and the loop behind `scaling train`. Imports the model wing only."""
