//! `clawgate`: the gateway daemon and a small command-line client for it.
#![forbid(unsafe_code)]

mod channel_adapter;
mod channel_irc;
mod channel_matrix;
mod channel_telegram;
mod cli;
mod commands;
mod config_file;
mod exit;
mod gateway_cmd;
mod openclaw_pairing;
mod providers;
mod worker;
mod workers;

use clap::Parser;
use cli::{Cli, Command, GatewayAction};
use exit::Failure;

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Gateway(g) => match g.action {
            Some(GatewayAction::Run(args)) => gateway_cmd::gateway_run(&args),
            None => gateway_cmd::gateway_run(&g.run),
        },
        Command::Call(args) => commands::call_command(&args),
        Command::Status(args) => commands::call(&args, "status", &serde_json::json!({}), &["operator.read"]),
        Command::Logs(args) => commands::logs(&args),
        Command::Reload(args) => commands::call(&args, "config.reload", &serde_json::json!({}), commands::ALL_SCOPES),
        Command::Config(args) => commands::config(&args),
        Command::Agent(args) => commands::agent_worker(&args),
        Command::Devices(args) => commands::devices(&args),
        Command::Pairing(args) => commands::pairing(&args),
        Command::Channels(args) => commands::channels(&args),
        Command::Channel(args) => commands::channel_adapter(&args),
        Command::OpenclawPairing(args) => commands::openclaw_pairing(&args),
        Command::SandboxExec(args) => commands::sandbox_exec(&args),
    }
}

fn main() -> std::process::ExitCode {
    // clap prints usage errors itself and exits with 2; --help and --version exit with 0.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = &failure.message {
                eprintln!("clawgate: {message}");
            }
            std::process::ExitCode::from(failure.exit as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_flag_of_another_command_is_refused() {
        let err = Cli::try_parse_from(["clawgate", "status", "--model", "x"])
            .err()
            .map(|e| e.exit_code());
        assert_eq!(err, Some(Exit::Usage as i32));
    }

    #[test]
    fn gateway_alone_runs_the_gateway_with_its_flags() {
        let cli = Cli::try_parse_from(["clawgate", "gateway", "--port", "1234"]).unwrap();
        let Command::Gateway(g) = cli.command else {
            panic!("not the gateway")
        };
        assert!(g.action.is_none());
        assert_eq!(g.run.port, Some(1234));
    }
}
