//! The Clawgate gateway engine: connections, auth, dispatch. Sans-IO.
#![forbid(unsafe_code)]
