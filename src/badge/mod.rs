//! Badge scanners: frame parser (no I/O), serial and HID readers, member lookup and cache.
