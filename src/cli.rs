//! Command line: the subcommands technicians and support run.
