//! What a part of the engine is handed when it handles an input: the connection table to send
//! through (the outbox), the configuration to read, and the entropy to draw from. A part gets
//! its own state as `&mut self` and this beside it; it never sees another part's state.

use crate::config::GatewayConfig;
use crate::conns::Connections;
use crate::entropy::{uuid_v4, Entropy};

pub(crate) struct Ctx<'a> {
    pub net: &'a mut Connections,
    pub config: &'a GatewayConfig,
    pub entropy: &'a mut dyn Entropy,
}

impl Ctx<'_> {
    /// The same context for a call that needs it for less long.
    pub fn reborrow(&mut self) -> Ctx<'_> {
        Ctx {
            net: &mut *self.net,
            config: self.config,
            entropy: &mut *self.entropy,
        }
    }

    /// A fresh random UUID (v4).
    pub fn random_uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.entropy.fill(&mut b);
        uuid_v4(b)
    }
}
