//! The command line: each subcommand with its own flags, help and errors.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// A small, fast, wire-compatible OpenClaw gateway.
#[derive(Parser)]
#[command(name = "clawgate", version, propagate_version = true)]
#[command(
    after_help = "Environment: OPENCLAW_GATEWAY_PORT, OPENCLAW_GATEWAY_TOKEN, OPENCLAW_GATEWAY_PASSWORD, \
OPENCLAW_GATEWAY_URL, OPENCLAW_STATE_DIR (default ~/.openclaw), OPENCLAW_CONFIG_PATH (default <state dir>/openclaw.json)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the gateway (`clawgate gateway run`; `clawgate gateway` alone does the same).
    Gateway(GatewayCommand),
    /// Calls one gateway method and prints its answer as JSON.
    Call(CallArgs),
    /// Prints the gateway's status.
    Status(ClientArgs),
    /// Prints the gateway's log lines.
    Logs(LogsArgs),
    /// Makes the gateway read its configuration file again.
    Reload(ClientArgs),
    /// Reads, checks or changes the configuration file.
    Config(ConfigCommand),
    /// Runs an agent worker that serves one agent's runs.
    Agent(AgentArgs),
    /// Lists and administers paired devices.
    Devices(DevicesCommand),
    /// DM pairing of chat channels: lists, approves and dismisses requests.
    Pairing(PairingCommand),
    /// Chat channels: their status, and the messages that could not be delivered.
    Channels(ChannelsCommand),
    /// Runs the adapter of one chat channel account (the gateway starts these itself).
    #[command(hide = true)]
    Channel(ChannelArgs),
    /// Keeps OpenClaw's local pairing store in step with the gateway (the gateway starts it).
    #[command(hide = true, name = "openclaw-pairing")]
    OpenclawPairing(ClientArgs),
    /// Confines itself with Landlock to a workspace and starts a command (inside the namespaces
    /// of a sandboxed tool call; the gateway starts it).
    #[command(hide = true, name = "sandbox-exec")]
    SandboxExec(SandboxExecArgs),
}

#[derive(Args)]
pub struct SandboxExecArgs {
    #[arg(long)]
    pub workspace: PathBuf,
    /// rw, ro or none.
    #[arg(long)]
    pub access: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct PairingCommand {
    #[command(subcommand)]
    pub action: PairingAction,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand)]
pub enum PairingAction {
    /// Lists the requests that wait (of one channel, or of all).
    List {
        channel: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approves a request by its code: the sender may write from now on.
    Approve {
        channel: String,
        code: String,
        #[arg(long, default_value = "default")]
        account: String,
        /// Do not tell the sender.
        #[arg(long)]
        no_notify: bool,
    },
    /// Dismisses a request by its code.
    Dismiss {
        channel: String,
        code: String,
        #[arg(long, default_value = "default")]
        account: String,
    },
}

#[derive(Args)]
pub struct ChannelsCommand {
    #[command(subcommand)]
    pub action: Option<ChannelsAction>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand)]
pub enum ChannelsAction {
    /// The channels, their accounts and their queues (the default).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Lists the messages that failed for good, with the reason.
    DeadLetters,
    /// Hands dead letters over for delivery again: one by its id, or all.
    Retry {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Connects an account to its network again after a stop.
    Start {
        channel: String,
        #[arg(long, default_value = "default")]
        account: String,
    },
    /// Takes an account off its network until a start or a restart.
    Stop {
        channel: String,
        #[arg(long, default_value = "default")]
        account: String,
    },
}

#[derive(Args)]
pub struct ChannelArgs {
    /// The channel (irc).
    #[arg(long)]
    pub channel: String,
    /// The account of the channel.
    #[arg(long, default_value = "default")]
    pub account: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayCommand {
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand)]
pub enum GatewayAction {
    /// Runs the gateway in the foreground until SIGINT or SIGTERM.
    Run(RunArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    Smol,
    Mio,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    None,
    Token,
    Password,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// The port (else OPENCLAW_GATEWAY_PORT, gateway.port, 18789).
    #[arg(long)]
    pub port: Option<u16>,
    /// loopback, lan, tailnet, custom, auto or an IP address (else gateway.bind, loopback).
    #[arg(long)]
    pub bind: Option<String>,
    /// The shared token clients present (else gateway.auth.token, OPENCLAW_GATEWAY_TOKEN, or one
    /// generated at first start and saved as gateway.auth.token). On the command line it is
    /// visible to every process of the same user (`/proc/<pid>/cmdline`): prefer --token-file.
    #[arg(long, conflicts_with_all = ["password", "token_file"])]
    pub token: Option<String>,
    /// A file that holds the token (its first line), instead of --token.
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub token_file: Option<PathBuf>,
    /// A shared password instead of a token.
    #[arg(long)]
    pub password: Option<String>,
    /// The auth mode (else gateway.auth.mode, or what the secrets given imply).
    #[arg(long, value_enum)]
    pub auth: Option<AuthArg>,
    /// The event loop.
    #[arg(long, value_enum, default_value = "smol")]
    pub runtime: RuntimeKind,
    /// Where pairings, sessions and the configuration file live (else OPENCLAW_STATE_DIR, ~/.openclaw).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Do not pair devices from this host silently.
    #[arg(long)]
    pub no_auto_approve_local: bool,
    /// Serve an OpenClaw Control UI bundle (e.g. the dist/control-ui folder of the openclaw npm
    /// package) from this folder (else gateway.controlUi.root).
    #[arg(long, value_name = "DIR")]
    pub control_ui: Option<String>,
    /// Do not start a worker for the agents that run on a model (start `clawgate agent` by hand).
    #[arg(long)]
    pub no_workers: bool,
}

/// How a client command finds and authenticates to the gateway: flags, then the configuration
/// file, then the environment, as the gateway on the same state directory resolves them.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// The gateway's URL (else OPENCLAW_GATEWAY_URL, else `ws://127.0.0.1:<port>` with the port from
    /// OPENCLAW_GATEWAY_PORT, gateway.port or 18789).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The gateway token (else gateway.auth.token, OPENCLAW_GATEWAY_TOKEN). Other processes of
    /// the same user can read a command line: prefer --token-file.
    #[arg(long, global = true, conflicts_with_all = ["password", "token_file"])]
    pub token: Option<String>,
    /// A file that holds the gateway token (its first line), instead of --token.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "password")]
    pub token_file: Option<PathBuf>,
    /// The gateway password (else gateway.auth.password, OPENCLAW_GATEWAY_PASSWORD).
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// The state directory whose configuration file holds the port and the token.
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct CallArgs {
    /// The method, e.g. health, status, sessions.list.
    pub method: String,
    /// The parameters, as a JSON object.
    #[arg(long, default_value = "{}")]
    pub params: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing new lines as they come.
    #[arg(long)]
    pub follow: bool,
    /// Print the raw JSON lines instead of `time [level] message`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct ConfigCommand {
    #[command(subcommand)]
    pub action: ConfigAction,
    /// The state directory whose openclaw.json is meant (else OPENCLAW_CONFIG_PATH,
    /// OPENCLAW_STATE_DIR, ~/.openclaw).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Checks the file as the gateway would at start.
    Validate,
    /// Prints the value at a dotted path, e.g. gateway.port.
    Get { path: String },
    /// Sets the value at a dotted path (JSON5 where it parses as such, else a string).
    Set { path: String, value: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Echo,
    Openai,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The agent this worker serves.
    #[arg(long, default_value = "main")]
    pub agent: String,
    /// Where replies of runs that name no model come from (a run of an agent with a model in the
    /// configuration goes to that model's provider): echo repeats the message word by word;
    /// openai streams from an OpenAI-compatible /v1/chat/completions given by the flags below,
    /// for every run.
    #[arg(long, value_enum, default_value = "echo")]
    pub backend: BackendKind,
    /// echo: milliseconds between words.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// echo: call this tool through the gateway before answering.
    #[arg(long)]
    pub tool: Option<String>,
    /// openai: the API's base URL (else OPENAI_BASE_URL, http://127.0.0.1:11434/v1).
    #[arg(long)]
    pub base_url: Option<String>,
    /// openai: the model (else OPENAI_MODEL, llama3.2).
    #[arg(long)]
    pub model: Option<String>,
    /// openai: the API key (else OPENAI_API_KEY).
    #[arg(long)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct DevicesCommand {
    #[command(subcommand)]
    pub action: Option<DevicesAction>,
    /// Print the gateway's JSON answer.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Subcommand)]
pub enum DevicesAction {
    /// Lists pending requests and paired devices (the default).
    List,
    /// Approves a pending pairing request.
    Approve { request_id: String },
    /// Rejects a pending pairing request.
    Reject { request_id: String },
    /// Removes a paired device.
    Remove { device_id: String },
    /// Gives a paired device a label.
    Rename { device_id: String, label: String },
    /// Issues a new device token for a role.
    Rotate {
        device_id: String,
        #[arg(long, default_value = "operator")]
        role: String,
    },
    /// Revokes a device's token for a role.
    Revoke {
        device_id: String,
        #[arg(long, default_value = "operator")]
        role: String,
    },
}
