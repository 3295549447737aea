//! What the engine asks its runtime to do, and the handles it names things by.

use crate::log_ring::LogLine;
use crate::tool_policy::WorkspaceAccess;
use serde_json::Value;

/// A connection handle, chosen by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes on the connection, after any bytes sent before.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close the connection once its queued bytes are written (or a short grace passed).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Print this log line.
    Log(LogLine),
    /// Write `contents` to `path` (relative to the state directory) atomically and durably, then
    /// call [`Gateway::handle_persisted`](crate::Gateway::handle_persisted) with `seq` (or [`Gateway::handle_persist_failed`](crate::Gateway::handle_persist_failed)).
    Persist {
        /// Relative path, e.g. `devices/paired.json`.
        path: String,
        /// The whole new file.
        contents: String,
        /// Acknowledge with this number.
        seq: u64,
    },
    /// The gateway stopped: every connection was told and closed; the runtime may exit.
    Stopped,
    /// Read the configuration file again and pass it to [`Gateway::handle_config_text`](crate::Gateway::handle_config_text)
    /// (asked for over RPC with `config.reload`).
    ReloadConfig,
    /// Stop tool call `call` if it is still running (its run ended): a command it runs is killed;
    /// its result is reported as usual.
    CancelTool {
        /// The call.
        call: u64,
    },
    /// Run a tool off the event loop, then call [`Gateway::handle_tool_result`](crate::Gateway::handle_tool_result) with its `call`.
    RunTool(ToolRun),
    /// Append this line (JSON, no newline) to the tool audit log under the state directory.
    AppendAudit {
        /// The line.
        line: String,
    },
    /// Append this line (JSON, no newline) to the control-plane audit log under the state
    /// directory (`logs/control-audit.jsonl`): who changed pairing, approvals, the configuration
    /// or cron jobs, when, and which paths. It never holds a secret.
    AppendControlAudit {
        /// The line.
        line: String,
    },
    /// Look at (and for a write, write) files of an agent's workspace, then call
    /// [`Gateway::handle_agent_files`](crate::Gateway::handle_agent_files) with the request and
    /// what was found.
    AgentFiles(AgentFileRequest),
    /// Replace a session transcript with `contents` in one step (a temporary file renamed over
    /// it), after the lines appended to it so far are written: a compaction.
    ReplaceTranscript {
        /// Relative to the state directory, e.g. `sessions/<sessionId>.jsonl`.
        file: String,
        /// The whole new text.
        contents: String,
    },
    /// Measure the host (load, memory, the state directory's disk) and call
    /// [`Gateway::handle_host_sample`](crate::Gateway::handle_host_sample) with `conn` and
    /// `request_id`: the answer to that `system.info` request.
    SampleHost {
        /// The asking connection.
        conn: ConnId,
        /// The request to answer.
        request_id: String,
    },
    /// Replace the configuration file at `path` with `text`, atomically (a temporary file
    /// renamed over it, synced), then call
    /// [`Gateway::handle_config_written`](crate::Gateway::handle_config_written) with `write`
    /// and the outcome.
    WriteConfig {
        /// The write, for the report.
        write: u64,
        /// The configuration file.
        path: String,
        /// Its new text.
        text: String,
    },
    /// Append this line (JSON, no newline) to a session transcript, creating the file (0600) and
    /// its folder (0700) if needed. Lines are written in order; the runtime syncs the files it
    /// appended to before it reads more input.
    AppendTranscript {
        /// Relative to the state directory, e.g. `sessions/<sessionId>.jsonl`.
        file: String,
        /// The line.
        line: String,
    },
    /// Read a file of the Control UI bundle and answer with it: call
    /// [`Gateway::handle_static_response`](crate::Gateway::handle_static_response).
    ServeStatic(StaticRequest),
    /// Delete a session transcript (the session was reset, deleted or pruned).
    RemoveTranscript {
        /// Relative to the state directory.
        file: String,
    },
    /// Delete a file of the gateway's state (e.g. the run history of a removed cron job); a
    /// file that is not there is no error.
    RemoveStateFile {
        /// Relative to the state directory.
        path: String,
    },
}

/// A tool call the runtime is to carry out ([`Output::RunTool`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRun {
    /// Hand this back to [`Gateway::handle_tool_result`](crate::Gateway::handle_tool_result).
    pub call: u64,
    /// The tool (one of [`crate::tool_policy::TOOLS`]).
    pub tool: &'static str,
    /// Its arguments, as the caller sent them (the tool checks them).
    pub args: Value,
    /// The agent's workspace from the config; `None` means the runtime's default one.
    pub workspace: Option<String>,
    /// The agent the call runs for.
    pub agent: String,
    /// What the call may do to the workspace.
    pub access: WorkspaceAccess,
    /// Whether the runtime must confine the call in its sandbox.
    pub sandboxed: bool,
}

/// A file of the Control UI bundle for the runtime to send ([`Output::ServeStatic`]); hand it
/// back with the response to [`Gateway::handle_static_response`](crate::Gateway::handle_static_response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRequest {
    /// The connection.
    pub conn: ConnId,
    /// The bundle's folder.
    pub root: String,
    /// The file, relative to `root`: no `..`, `.`, empty or backslash segments.
    pub path: String,
    /// Serve `index.html` when the file does not exist (an SPA route).
    pub spa_fallback: bool,
    /// The client accepts `br` / `gzip` (precompressed siblings are used when present).
    pub accepts_br: bool,
    /// See `accepts_br`.
    pub accepts_gzip: bool,
    /// A `HEAD` request.
    pub head_only: bool,
    /// Keep the connection open after the answer.
    pub keep_alive: bool,
}

/// What the runtime is to do with the files of an [`AgentFileRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentFileStage {
    /// Report the files (with their text for `agents.files.get`).
    Read,
    /// Report the file with its text, for the engine to compare with `expectedHash`.
    Check {
        /// The text to write if the comparison holds.
        content: String,
    },
    /// Write the text to the file (making the workspace folder if needed), then report it.
    Write {
        /// The file's new text.
        content: String,
    },
}

/// Files of an agent's workspace the runtime is asked about; handed back with what it found to
/// [`Gateway::handle_agent_files`](crate::Gateway::handle_agent_files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFileRequest {
    /// The asking connection.
    pub conn: ConnId,
    /// The request to answer.
    pub request_id: String,
    /// `agents.files.list`, `agents.files.get` or `agents.files.set`.
    pub method: String,
    /// The agent.
    pub agent: String,
    /// Its workspace folder.
    pub workspace: String,
    /// File names in the workspace (from [`crate::agent_files::BOOTSTRAP_FILES`]).
    pub names: Vec<String>,
    /// What to do.
    pub stage: AgentFileStage,
    /// For a write: the hash (SHA-256, hex) of the text it was based on.
    pub expected_hash: Option<String>,
}

impl AgentFileRequest {
    /// Whether the runtime reports the files' text.
    pub fn wants_content(&self) -> bool {
        self.method != "agents.files.list"
    }
}

/// One file as the runtime found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFileFacts {
    /// Its name in the workspace.
    pub name: String,
    /// Its path.
    pub path: String,
    /// Its size; `None` when there is no such file.
    pub size: Option<u64>,
    /// When it last changed (milliseconds since 1970).
    pub updated_at_ms: Option<u64>,
    /// Its text, when asked for and present.
    pub content: Option<String>,
}
