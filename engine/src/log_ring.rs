//! The gateway's own log: its lines, and the last [`LOG_RING_LINES`] of them kept in memory for
//! `logs.tail`, each with a cursor a reader can resume from.

use crate::config::LOG_RING_LINES;
use serde_json::{json, Value};
use std::collections::VecDeque;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Routine events.
    Info,
    /// Something a caller did wrong, or a degraded condition.
    Warn,
    /// A failure of the gateway itself.
    Error,
}

impl LogLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One line of the gateway's own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When, in ms since the epoch.
    pub ts: u64,
    /// Severity.
    pub level: LogLevel,
    /// The text. Never contains a secret.
    pub message: String,
}

impl LogLine {
    /// The line as the gateway prints it.
    pub fn render(&self) -> String {
        format!("{} [{}] {}", iso8601_utc(self.ts), self.level.as_str(), self.message)
    }

    /// The line as `logs.tail` returns it: one JSON object in the layout of OpenClaw's file log
    /// (`time`, `_meta.logLevelName`, `message`), which its CLI formats.
    pub fn render_json(&self) -> String {
        serde_json::json!({
            "time": iso8601_utc(self.ts),
            "_meta": {"logLevelName": self.level.as_str().to_ascii_uppercase(), "name": "clawgate"},
            "message": self.message,
        })
        .to_string()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch (proleptic Gregorian calendar).
pub fn iso8601_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days: converts a day count into year, month and day.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::iso8601_utc;

    #[test]
    fn iso_dates_are_exact() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_utc(1_795_694_455_763), "2026-11-26T12:00:55.763Z");
    }
}

/// The most recent log lines, numbered from 1.
#[derive(Default)]
pub(crate) struct LogRing {
    lines: VecDeque<(u64, LogLine)>,
    cursor: u64,
}

impl LogRing {
    /// Keeps `line`, dropping the oldest beyond the ring's size.
    pub(crate) fn push(&mut self, line: LogLine) {
        self.cursor += 1;
        self.lines.push_back((self.cursor, line));
        if self.lines.len() > LOG_RING_LINES {
            self.lines.pop_front();
        }
    }

    /// The `logs.tail` answer: lines after `cursor` (else the last `limit`), at most `limit`
    /// lines and `max_bytes` of them, in OpenClaw's JSON log layout.
    pub(crate) fn tail(&self, cursor: Option<u64>, limit: usize, max_bytes: usize) -> Value {
        let first_kept = self.lines.front().map_or(self.cursor + 1, |(c, _)| *c);
        let (start, reset) = match cursor {
            // A cursor from before the ring's start lost lines: say so and start at what is kept.
            Some(c) if c + 1 < first_kept => (first_kept, true),
            Some(c) => (c + 1, false),
            None => (self.cursor.saturating_sub(limit as u64) + 1, false),
        };
        let mut lines = Vec::new();
        let mut bytes = 0;
        let mut last = start.saturating_sub(1);
        let mut truncated = false;
        for (c, line) in self.lines.iter().filter(|(c, _)| *c >= start) {
            let text = line.render_json();
            if lines.len() >= limit || bytes + text.len() > max_bytes {
                truncated = true;
                break;
            }
            bytes += text.len();
            lines.push(text);
            last = *c;
        }
        json!({"file": "memory", "cursor": last, "size": self.cursor, "lines": lines, "truncated": truncated, "reset": reset})
    }
}
