"""Where a trial runs: in this process (the default), in worker processes several at once, or on several
ranks with torch.distributed. Every way runs the same trial function (engine.train.run_trial) and sends the
same events to the one writer in the parent process; docs/scaling.md has the picture and the figures."""
