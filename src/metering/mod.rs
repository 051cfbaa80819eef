//! Pricing tables and usage -> cost, without I/O, in exact nano-dollars.
