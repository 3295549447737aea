//! Runtime that drives the Clawgate engine.
