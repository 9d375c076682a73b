"""The fold machinery: appliers own partitions (`lease`) and consume the log through FastStream (`applier`), fold a
batch into every projection and commit it with the checkpoint (`fold`), replay, digest and verify (`rebuild`), and
how far the fold has come (`progress`)."""
