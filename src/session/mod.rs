//! Session lifecycle core, without I/O: inputs in, decisions out (see ARCHITECTURE.md).
