//! How a command ends: one exit code per kind of failure, and output that survives a closed pipe.

use std::io::Write;

/// The process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Success = 0,
    /// The command could not do its work (the gateway refused, a port was taken, a file was bad).
    Failure = 1,
    /// The command line was wrong.
    Usage = 2,
    /// The configuration is invalid (`EX_CONFIG`).
    Config = 78,
}

/// Why a command stopped: an exit status and what to tell the user (nothing for a reader that went
/// away).
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: Some(message.into()),
        }
    }

    /// The command could not do its work.
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Failure, message)
    }

    /// The command line was wrong.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    /// The configuration is invalid.
    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Config, message)
    }

    /// Standard output was closed by its reader (`clawgate logs | head`): stop quietly, as Unix
    /// tools do, and successfully, since everything that was wanted was read.
    fn reader_gone() -> Failure {
        Failure {
            exit: Exit::Success,
            message: None,
        }
    }
}

/// Prints one line on standard output. A closed pipe ends the command quietly instead of panicking
/// as `println!` does.
pub fn print_line(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::reader_gone()),
        Err(e) => Err(Failure::failed(format!("cannot write to standard output: {e}"))),
    }
}
