//! Deterministic simulation of agent runs: an operator sends messages while workers come and
//! go, stream text, finish, fail, and the clock jumps; invariants are checked at the end.
//!
//! Invariants: nothing panics; every accepted message ends exactly once (`final`, `error` or
//! `aborted`) and nothing of a run is sent after its end; a `final` reply is exactly the text the
//! worker produced, and the `chat` deltas of the run add up to it (the throttle loses nothing);
//! chat seqs of a run never go back; no run is left in the persisted queue.

use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, GatewayConfig};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    Send,
    WorkerUp,
    WorkerDown,
    Delta { pick: usize, word: u8 },
    Finish { pick: usize, ok: bool },
    Abort,
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Send),
        2 => Just(Op::WorkerUp),
        1 => Just(Op::WorkerDown),
        6 => (any::<usize>(), any::<u8>()).prop_map(|(pick, word)| Op::Delta { pick, word }),
        3 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, ok)| Op::Finish { pick, ok }),
        1 => Just(Op::Abort),
        3 => prop_oneof![Just(1u64), Just(60), Just(150), Just(1_000), Just(700_000)].prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A run as a worker holds it.
struct Held {
    invoke: Value,
    run: String,
    text: String,
}

struct Sim {
    b: Bench,
    op: ConnId,
    worker: Option<ConnId>,
    held: Vec<Held>,
    accepted: Vec<String>,
    /// What the worker finished each run with (ok runs only).
    produced: HashMap<String, String>,
    /// Every `chat` payload the operator got, in order.
    chats: Vec<Value>,
    next: u64,
}

impl Sim {
    fn collect(&mut self) {
        for e in self.b.events(self.op) {
            if e.event == "chat" {
                self.chats.push(e.parse_payload().unwrap());
            }
        }
        if let Some(w) = self.worker {
            for e in self.b.events(w) {
                if e.event == "node.invoke.request" {
                    let invoke: Value = e.parse_payload().unwrap();
                    let params: Value = serde_json::from_str(invoke["paramsJSON"].as_str().unwrap()).unwrap();
                    let run = params["runId"].as_str().unwrap().to_owned();
                    self.held.push(Held {
                        invoke,
                        run,
                        text: String::new(),
                    });
                }
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Send => {
                self.next += 1;
                let run = format!("run-{}", self.next);
                let params =
                    json!({"sessionKey": "main", "message": format!("message {}", self.next), "idempotencyKey": run});
                let text = json!({"type": "req", "id": run, "method": "chat.send", "params": params}).to_string();
                self.b.send_text(self.op, &text);
                for f in self.b.frames(self.op) {
                    match f {
                        clawgate_proto::frame::Frame::Response(r) if r.id == run => {
                            assert!(r.ok, "{r:?}");
                            self.accepted.push(run.clone());
                        }
                        clawgate_proto::frame::Frame::Event(e) if e.event == "chat" => {
                            self.chats.push(e.parse_payload().unwrap());
                        }
                        _ => {}
                    }
                }
            }
            Op::WorkerUp => {
                if self.worker.is_none() {
                    let w = self.b.ws(loopback(), &[]);
                    let connect =
                        json!({"type": "req", "id": "c", "method": "connect", "params": worker_params(&["main"])});
                    self.b.send_text(w, &connect.to_string());
                    self.worker = Some(w);
                }
            }
            Op::WorkerDown => {
                if let Some(w) = self.worker.take() {
                    self.b.gw.handle_closed(self.b.now, w);
                    self.b.pump();
                    self.held.clear();
                }
            }
            Op::Delta { pick, word } => {
                let Some(w) = self.worker else { return };
                if self.held.is_empty() {
                    return;
                }
                let i = pick % self.held.len();
                let delta = format!("w{word} ");
                self.held[i].text.push_str(&delta);
                let payload = json!({"runId": self.held[i].run, "delta": delta}).to_string();
                let req = json!({"type": "req", "id": "d", "method": "node.event", "params": {"event": "agent.delta", "payloadJSON": payload}});
                self.b.send_text(w, &req.to_string());
            }
            Op::Finish { pick, ok } => {
                let Some(w) = self.worker else { return };
                if self.held.is_empty() {
                    return;
                }
                let h = self.held.remove(pick % self.held.len());
                let params = if *ok {
                    self.produced.insert(h.run.clone(), h.text.clone());
                    json!({"id": h.invoke["id"], "nodeId": h.invoke["nodeId"], "ok": true, "payloadJSON": json!({"text": h.text}).to_string()})
                } else {
                    json!({"id": h.invoke["id"], "nodeId": h.invoke["nodeId"], "ok": false, "error": {"code": "X", "message": "backend failed"}})
                };
                let req = json!({"type": "req", "id": "r", "method": "node.invoke.result", "params": params});
                self.b.send_text(w, &req.to_string());
            }
            Op::Abort => {
                let req =
                    json!({"type": "req", "id": "abort", "method": "chat.abort", "params": {"sessionKey": "main"}});
                self.b.send_text(self.op, &req.to_string());
            }
            Op::Advance { ms } => self.b.advance(*ms),
        }
        self.collect();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn every_accepted_message_ends_once_with_what_the_worker_said(ops in prop::collection::vec(op(), 1..80)) {
        let mut b = Bench::new(GatewayConfig::with_token(TOKEN));
        let op = b.operator(&["operator.write"]);
        let mut sim = Sim { b, op, worker: None, held: Vec::new(), accepted: Vec::new(), produced: HashMap::new(), chats: Vec::new(), next: 0 };
        for o in &ops {
            sim.step(o);
        }
        // Wind down: a worker serves what waits, finishes all it holds; then every deadline passes.
        sim.step(&Op::WorkerUp);
        while !sim.held.is_empty() {
            sim.step(&Op::Finish { pick: 0, ok: true });
        }
        sim.step(&Op::Advance { ms: 700_000 });

        let mut by_run: HashMap<String, Vec<Value>> = HashMap::new();
        for c in &sim.chats {
            by_run.entry(c["runId"].as_str().unwrap().to_owned()).or_default().push(c.clone());
        }
        for run in &sim.accepted {
            let events = by_run.remove(run).unwrap_or_default();
            let ends: Vec<&Value> = events
                .iter()
                .filter(|c| matches!(c["state"].as_str(), Some("final" | "error" | "aborted")))
                .collect();
            prop_assert_eq!(ends.len(), 1, "run {} ended {} times: {:?}", run, ends.len(), events);
            let last = events.last().unwrap();
            prop_assert!(std::ptr::eq(ends[0], last), "events after the end of {}: {:?}", run, events);
            let seqs: Vec<u64> = events.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
            prop_assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "seqs of {} go back: {:?}", run, seqs);
            if last["state"] == "final" {
                let text = last["message"]["content"][0]["text"].as_str().unwrap();
                prop_assert_eq!(Some(text), sim.produced.get(run).map(String::as_str), "final of {}", run);
                let joined: String = events
                    .iter()
                    .filter(|c| c["state"] == "delta")
                    .map(|c| c["deltaText"].as_str().unwrap())
                    .collect();
                prop_assert_eq!(joined.as_str(), text, "the deltas of {} do not add up", run);
            }
        }
        prop_assert!(by_run.is_empty(), "events for runs never accepted: {:?}", by_run.keys());
        if let Some(queue) = sim.b.disk.get("agents/queue.json") {
            let queue: Value = serde_json::from_str(queue).unwrap();
            prop_assert_eq!(&queue["queue"], &json!([]));
        }
    }
}
