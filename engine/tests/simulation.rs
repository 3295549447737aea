//! Deterministic simulation: many clients doing random things against one engine under a fake
//! clock, with invariants checked after every step.
//!
//! Invariants: nothing panics; the engine tracks exactly the connections that are still open; its
//! presence table stays bounded; a connection never gets more scopes than it asked for, and no
//! call succeeds that its granted scopes do not allow; every request is answered or its connection
//! is closed (unless raw garbage was written into that stream first).

use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, GatewayConfig};
use clawgate_proto::frame::{Frame, RequestFrame};
use clawgate_proto::scopes::{authorize, Scope, ScopeSet};
use clawgate_proto::Role;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

const METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "logs.tail",
    "config.get",
    "chat.send",
    "device.pair.list",
    "no.such",
];

#[derive(Debug, Clone)]
enum Op {
    Open {
        remote: bool,
    },
    Connect {
        client: usize,
        good_token: bool,
        scopes: Vec<usize>,
        probe: bool,
    },
    Request {
        client: usize,
        method: usize,
    },
    Pause {
        client: usize,
    },
    Resume {
        client: usize,
    },
    Close {
        client: usize,
    },
    Garbage {
        client: usize,
        bytes: Vec<u8>,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<bool>().prop_map(|remote| Op::Open { remote }),
        3 => (any::<usize>(), prop::bool::weighted(0.8), prop::collection::vec(0..Scope::ALL.len(), 0..4), prop::bool::weighted(0.2))
            .prop_map(|(client, good_token, scopes, probe)| Op::Connect { client, good_token, scopes, probe }),
        6 => (any::<usize>(), 0..METHODS.len()).prop_map(|(client, method)| Op::Request { client, method }),
        1 => any::<usize>().prop_map(|client| Op::Pause { client }),
        1 => any::<usize>().prop_map(|client| Op::Resume { client }),
        1 => any::<usize>().prop_map(|client| Op::Close { client }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(client, bytes)| Op::Garbage { client, bytes }),
        2 => prop_oneof![Just(1u64), Just(5_000), Just(10_000), Just(30_000), Just(60_000)].prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Default)]
struct Tracked {
    requested: Vec<String>,
    granted: Option<ScopeSet>,
    outstanding: HashSet<String>,
    sent: HashSet<String>,
    closed_by_us: bool,
    /// Raw bytes were written into the stream: what follows may be swallowed as frame payload,
    /// so answers are not owed any more (the connection may stay open waiting for the rest).
    corrupted: bool,
}

struct Sim {
    b: Bench,
    order: Vec<ConnId>,
    tracked: HashMap<ConnId, Tracked>,
    next_id: u64,
}

impl Sim {
    fn pick(&self, i: usize) -> Option<ConnId> {
        (!self.order.is_empty()).then(|| self.order[i % self.order.len()])
    }

    fn alive(&self, c: ConnId) -> bool {
        let p = &self.b.peers[&c];
        !p.closed_by_gateway && !self.tracked[&c].closed_by_us
    }

    fn collect(&mut self) {
        for c in self.order.clone() {
            let texts = self.b.take_texts(c);
            let t = self.tracked.get_mut(&c).unwrap();
            for text in texts {
                let Ok(frame) = Frame::decode(&text) else { continue };
                let Frame::Response(r) = frame else { continue };
                if r.id == "c" {
                    if r.ok {
                        let hello: Value = serde_json::from_str(r.payload.as_ref().unwrap().get()).unwrap();
                        let names: Vec<String> = serde_json::from_value(hello["auth"]["scopes"].clone()).unwrap();
                        for n in &names {
                            assert!(t.requested.contains(n), "granted {n} that was not requested");
                        }
                        t.granted = Some(ScopeSet::from_names(&names));
                    }
                    continue;
                }
                assert!(t.sent.contains(&r.id), "an answer to nothing: {}", r.id);
                t.outstanding.remove(&r.id);
                let method = r.id.split('#').next().unwrap().to_owned();
                if r.ok {
                    let granted = t.granted.expect("an answer before hello-ok");
                    assert!(
                        authorize(Role::Operator, granted, &method).is_ok(),
                        "{method} succeeded without its scope"
                    );
                }
            }
        }
    }

    fn check(&mut self) {
        self.collect();
        let open = self.order.iter().filter(|c| self.alive(**c)).count();
        assert_eq!(
            self.b.gw.connection_count(),
            open,
            "the engine tracks closed connections"
        );
        for c in &self.order {
            let paused = self.b.peers[c].paused;
            if self.alive(*c) && !paused && !self.tracked[c].corrupted {
                assert!(
                    self.tracked[c].outstanding.is_empty(),
                    "unanswered requests on an open connection"
                );
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Open { remote: from_afar } => {
                let c = self.b.ws(if *from_afar { remote() } else { loopback() }, &[]);
                self.order.push(c);
                self.tracked.insert(c, Tracked::default());
            }
            Op::Connect {
                client,
                good_token,
                scopes,
                probe,
            } => {
                let Some(c) = self.pick(*client) else { return };
                if !self.alive(c) || self.tracked[&c].granted.is_some() || !self.tracked[&c].requested.is_empty() {
                    return;
                }
                let names: Vec<&str> = scopes.iter().map(|i| Scope::ALL[*i].as_str()).collect();
                let mut p = cli_params(&names, Some(if *good_token { TOKEN } else { "bad" }));
                if *probe {
                    p["client"]["mode"] = "probe".into();
                }
                self.tracked.get_mut(&c).unwrap().requested = names.iter().map(|s| (*s).to_owned()).collect();
                let text = json!({"type": "req", "id": "c", "method": "connect", "params": p}).to_string();
                self.b.send_text(c, &text);
            }
            Op::Request { client, method } => {
                let Some(c) = self.pick(*client) else { return };
                if !self.alive(c) || self.tracked[&c].granted.is_none() {
                    return;
                }
                self.next_id += 1;
                let id = format!("{}#{}", METHODS[*method], self.next_id);
                let t = self.tracked.get_mut(&c).unwrap();
                t.outstanding.insert(id.clone());
                t.sent.insert(id.clone());
                self.b
                    .send_text(c, &RequestFrame::new(id, METHODS[*method], &json!({})).encode());
            }
            Op::Pause { client } => {
                if let Some(c) = self.pick(*client) {
                    self.b.pause(c);
                }
            }
            Op::Resume { client } => {
                if let Some(c) = self.pick(*client) {
                    self.b.resume(c);
                }
            }
            Op::Close { client } => {
                let Some(c) = self.pick(*client) else { return };
                if self.alive(c) {
                    self.tracked.get_mut(&c).unwrap().closed_by_us = true;
                    self.b.gw.handle_closed(self.b.now, c);
                    self.b.pump();
                }
            }
            Op::Garbage { client, bytes } => {
                let Some(c) = self.pick(*client) else { return };
                if self.alive(c) {
                    // Raw bytes on the socket: whatever they are, the engine must cope.
                    self.tracked.get_mut(&c).unwrap().corrupted = true;
                    self.b.send_bytes(c, bytes);
                }
            }
            Op::Advance { ms } => self.b.advance(*ms),
        }
        // A connection the gateway closed has its outstanding requests released.
        for c in self.order.clone() {
            if !self.alive(c) {
                self.tracked.get_mut(&c).unwrap().outstanding.clear();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_random_interleavings(ops in prop::collection::vec(op(), 1..120)) {
        let mut config = GatewayConfig::with_token(TOKEN);
        config.max_buffered_bytes = 4096;
        config.health_refresh_interval_ms = 30_000;
        let mut sim = Sim { b: Bench::new(config), order: Vec::new(), tracked: HashMap::new(), next_id: 0 };
        for op in &ops {
            sim.step(op);
            sim.check();
        }
        // Everyone reads again: every request left must now be answered.
        for c in sim.order.clone() {
            sim.b.resume(c);
        }
        sim.check();
    }
}
