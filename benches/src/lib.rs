//! Benchmarks and the load tool for Clawgate.
