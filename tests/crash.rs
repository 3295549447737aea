//! Crash safety of pairings: devices pair (silently, on loopback) while the gateway is killed with
//! SIGKILL at random moments and restarted on the same state directory. Every pairing that was
//! acknowledged (a `hello-ok` carrying a device token) before a kill must be there after the
//! restart, the files must always parse, and no device that never asked may appear.
//!
//! `CLAWGATE_CRASH_CYCLES` sets the number of kill cycles (default 15).

use clawgate_proto::device::DeviceIdentity;
use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn identity(n: u32) -> DeviceIdentity {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    DeviceIdentity::from_seed(&seed)
}

#[test]
fn acknowledged_pairings_survive_sigkill_at_random_moments() {
    let cycles: u32 = std::env::var("CLAWGATE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let state = std::env::temp_dir().join(format!("clawgate-crash-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut attempted: HashSet<String> = HashSet::new();
    let mut next_device = 0u32;
    let mut kills = 0;

    for cycle in 0..cycles {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .args(["gateway", "run", "--port", &port.to_string(), "--token", "crash"])
            .env("OPENCLAW_STATE_DIR", &state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();

        // Everything acknowledged so far must be here: the restarted gateway accepts the device
        // with its stored pairing (the hello-ok would carry a fresh token otherwise the same).
        let started = Instant::now();
        let check = loop {
            match clawgate_benches::connect(addr, "crash", &["operator.read"], None, 1) {
                Ok(c) => break c,
                Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "cycle {cycle}: the gateway did not come back: {e}; {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        };
        drop(check);
        let paired_text = std::fs::read_to_string(state.join("devices/paired.json")).unwrap_or_else(|_| "{}".into());
        let paired: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&paired_text)
            .unwrap_or_else(|e| panic!("cycle {cycle}: paired.json does not parse: {e}"));
        for id in &acknowledged {
            assert!(
                paired.contains_key(id),
                "cycle {cycle}: acknowledged device {id} was lost"
            );
        }
        for id in paired.keys() {
            assert!(
                attempted.contains(id),
                "cycle {cycle}: device {id} appeared from nowhere"
            );
        }
        let pending_text = std::fs::read_to_string(state.join("devices/pending.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str::<serde_json::Value>(&pending_text)
            .unwrap_or_else(|e| panic!("pending.json does not parse: {e}"));

        // Pair devices until the kill lands.
        let kill_after = Duration::from_millis(5 + rng.next() % 80);
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        });
        loop {
            next_device += 1;
            let device = identity(next_device);
            attempted.insert(device.device_id().to_owned());
            match clawgate_benches::connect(
                addr,
                "crash",
                &["operator.read"],
                Some(device.clone()),
                next_device as u64,
            ) {
                Ok(_) => {
                    acknowledged.insert(device.device_id().to_owned());
                }
                Err(_) => break,
            }
        }
        killer.join().unwrap();
        let _ = child.wait();
        kills += 1;
    }
    eprintln!(
        "{kills} kill cycles, {} pairings acknowledged, {} attempted",
        acknowledged.len(),
        attempted.len()
    );
    assert!(acknowledged.len() as u32 >= cycles, "too few pairings to mean anything");
    let _ = std::fs::remove_dir_all(&state);
}
