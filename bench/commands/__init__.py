"""One module per `bench` verb: `add_arguments(parser)` and `run(args) -> int`; argument parsing and printing only (the work is in `bench.api`)."""
