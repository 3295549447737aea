//! Counters for `GET /metrics`, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Upper bounds (microseconds) of the event-loop turn histogram buckets.
pub const TURN_BUCKETS_US: [u64; 10] = [10, 50, 100, 250, 500, 1_000, 5_000, 10_000, 50_000, 100_000];

/// What the connection table reports for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnStats {
    /// Open connections by state.
    pub states: [(&'static str, usize); 3],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub slow_consumer_closes: u64,
}

/// What the gateway counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub handshakes: BTreeMap<&'static str, u64>,
    pub requests: BTreeMap<(String, &'static str), u64>,
    pub turn_buckets: [u64; TURN_BUCKETS_US.len()],
    pub turn_count: u64,
    pub turn_sum_us: u64,
}

impl Metrics {
    pub fn handshake(&mut self, outcome: &'static str) {
        *self.handshakes.entry(outcome).or_insert(0) += 1;
    }

    pub fn request(&mut self, method: &str, known: bool, ok: bool) {
        // Unknown method names are folded into one label so clients cannot grow the table.
        let method = if known { method.to_owned() } else { "unknown".to_owned() };
        *self
            .requests
            .entry((method, if ok { "ok" } else { "error" }))
            .or_insert(0) += 1;
    }

    pub fn loop_turn(&mut self, micros: u64) {
        self.turn_count += 1;
        self.turn_sum_us += micros;
        for (i, bound) in TURN_BUCKETS_US.iter().enumerate() {
            if micros <= *bound {
                self.turn_buckets[i] += 1;
            }
        }
    }

    /// The exposition text.
    pub fn render(&self, conns: &ConnStats) -> String {
        let mut s = String::with_capacity(2048);
        let _ = writeln!(s, "# HELP clawgate_connections Open connections by state.");
        let _ = writeln!(s, "# TYPE clawgate_connections gauge");
        for (state, n) in &conns.states {
            let _ = writeln!(s, "clawgate_connections{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP clawgate_handshakes_total WebSocket handshakes by outcome.");
        let _ = writeln!(s, "# TYPE clawgate_handshakes_total counter");
        for (outcome, n) in &self.handshakes {
            let _ = writeln!(s, "clawgate_handshakes_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP clawgate_requests_total Requests by method and outcome.");
        let _ = writeln!(s, "# TYPE clawgate_requests_total counter");
        for ((method, outcome), n) in &self.requests {
            let _ = writeln!(
                s,
                "clawgate_requests_total{{method=\"{method}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP clawgate_bytes_total Bytes received and sent on all connections."
        );
        let _ = writeln!(s, "# TYPE clawgate_bytes_total counter");
        let _ = writeln!(s, "clawgate_bytes_total{{direction=\"in\"}} {}", conns.bytes_in);
        let _ = writeln!(s, "clawgate_bytes_total{{direction=\"out\"}} {}", conns.bytes_out);
        let _ = writeln!(
            s,
            "# HELP clawgate_slow_consumer_closes_total Connections closed for not reading."
        );
        let _ = writeln!(s, "# TYPE clawgate_slow_consumer_closes_total counter");
        let _ = writeln!(s, "clawgate_slow_consumer_closes_total {}", conns.slow_consumer_closes);
        let _ = writeln!(
            s,
            "# HELP clawgate_event_loop_turn_seconds Time the runtime spent per event-loop turn."
        );
        let _ = writeln!(s, "# TYPE clawgate_event_loop_turn_seconds histogram");
        for (i, bound) in TURN_BUCKETS_US.iter().enumerate() {
            let _ = writeln!(
                s,
                "clawgate_event_loop_turn_seconds_bucket{{le=\"{}\"}} {}",
                *bound as f64 / 1e6,
                self.turn_buckets[i]
            );
        }
        let _ = writeln!(
            s,
            "clawgate_event_loop_turn_seconds_bucket{{le=\"+Inf\"}} {}",
            self.turn_count
        );
        let _ = writeln!(
            s,
            "clawgate_event_loop_turn_seconds_sum {}",
            self.turn_sum_us as f64 / 1e6
        );
        let _ = writeln!(s, "clawgate_event_loop_turn_seconds_count {}", self.turn_count);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut m = Metrics::default();
        m.loop_turn(5);
        m.loop_turn(300);
        m.loop_turn(1_000_000);
        assert_eq!(m.turn_buckets[0], 1);
        assert_eq!(m.turn_buckets[4], 2);
        assert_eq!(m.turn_buckets[9], 2);
        let text = m.render(&ConnStats::default());
        assert!(text.contains("clawgate_event_loop_turn_seconds_bucket{le=\"+Inf\"} 3"));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let mut m = Metrics::default();
        m.request("a.b", false, false);
        m.request("c.d", false, false);
        m.request("health", true, true);
        let text = m.render(&ConnStats::default());
        assert!(text.contains("clawgate_requests_total{method=\"unknown\",outcome=\"error\"} 2"));
        assert!(text.contains("clawgate_requests_total{method=\"health\",outcome=\"ok\"} 1"));
    }
}
