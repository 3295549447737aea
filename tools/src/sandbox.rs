//! Kernel confinement of sandboxed tool calls: Landlock, and namespaces for commands.
//!
//! Landlock restricts the calling thread and everything it starts afterwards, so a sandboxed file
//! tool runs on a thread of its own: that thread restricts itself (and sets `no_new_privs`), then
//! does the file work. The gateway's other threads are not affected.
//!
//! A sandboxed command (`exec`) is started through util-linux's `unshare` in user, network,
//! process and mount namespaces of its own: no network but a loopback that is down, only its
//! own processes to see and signal (its `/proc` is mounted afresh), no capabilities (it runs as
//! `nobody` of its user namespace, with `no_new_privs`), and when the first process of the
//! namespace ends, the kernel ends every other. Inside, the gateway's binary (`sandbox-exec`)
//! applies the same Landlock rules to itself and starts the command under its resource limits.
//! Landlock comes last because a Landlock-confined process may not mount `/proc`.
//!
//! Inside the sandbox the system directories (`/usr`, `/bin`, `/lib*`, `/etc`, ...) are readable and
//! executable, `/dev` is readable and writable (for `/dev/null`), and the workspace gets the
//! configured access: `rw` everything, `ro` reading only, `none` nothing. Everything else on the
//! file system is out of reach, whatever path a command uses.

use crate::ToolError;
use clawgate_engine::tool_policy::WorkspaceAccess;
use landlock::{
    path_beneath_rules, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};
use std::path::Path;

/// The ABI whose rights Clawgate asks for; newer kernels enforce them all, older ones what they know.
const TARGET_ABI: ABI = ABI::V5;

/// Directories a sandboxed command may read and run programs from.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt", "/proc",
];

/// util-linux's `unshare`, which makes the namespaces of a confined command.
pub const UNSHARE: &str = "/usr/bin/unshare";

/// How confined commands are started: the program that confines itself inside the namespaces
/// (the gateway's own binary, with its `sandbox-exec` command).
#[derive(Clone, Debug)]
pub struct ExecSandbox {
    helper: std::path::PathBuf,
}

impl ExecSandbox {
    /// Confined commands start through `helper sandbox-exec`.
    pub fn new(helper: impl Into<std::path::PathBuf>) -> ExecSandbox {
        ExecSandbox { helper: helper.into() }
    }

    /// The command line in front of a confined command in `workspace` with `access`: the
    /// namespaces, then Landlock. With `network`, the command keeps the host's network.
    pub fn wrapper(&self, workspace: &Path, access: WorkspaceAccess, network: bool) -> Vec<String> {
        let mut argv: Vec<String> = [UNSHARE, "--user", "--map-user=65534", "--map-group=65534"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        if !network {
            argv.push("--net".into());
        }
        for a in ["--pid", "--fork", "--mount-proc", "--kill-child", "--"] {
            argv.push(a.into());
        }
        argv.push(self.helper.display().to_string());
        argv.push("sandbox-exec".into());
        argv.push("--workspace".into());
        argv.push(workspace.display().to_string());
        argv.push("--access".into());
        argv.push(access_name(access).into());
        argv.push("--".into());
        argv
    }

    /// Whether this host can start confined commands: one is started (`true`) and must succeed.
    pub fn probe(&self) -> Result<(), String> {
        if !Path::new(UNSHARE).exists() {
            return Err(format!("{UNSHARE} (util-linux) is not installed"));
        }
        let mut argv = self.wrapper(&std::env::temp_dir(), WorkspaceAccess::None, false);
        argv.push("/bin/true".into());
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot start {UNSHARE}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "this host does not let a process make its own user, network and process namespaces: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// The name `sandbox-exec --access` takes.
pub fn access_name(access: WorkspaceAccess) -> &'static str {
    match access {
        WorkspaceAccess::None => "none",
        WorkspaceAccess::ReadOnly => "ro",
        WorkspaceAccess::ReadWrite => "rw",
    }
}

/// The access `sandbox-exec --access` names.
pub fn access_named(name: &str) -> Option<WorkspaceAccess> {
    match name {
        "none" => Some(WorkspaceAccess::None),
        "ro" => Some(WorkspaceAccess::ReadOnly),
        "rw" => Some(WorkspaceAccess::ReadWrite),
        _ => None,
    }
}

/// Whether this host can confine tool calls, described for the start-up log; `Err` says why not.
pub fn probe() -> Result<String, String> {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create())
        .map(|_| "Landlock".to_owned())
        .map_err(|e| format!("Landlock is not available: {e}"))
}

/// Restricts the calling thread (and what it starts) to the workspace with `access`.
/// Call it only on a thread that is dropped after the tool call.
pub fn confine_current_thread(workspace: &Path, access: WorkspaceAccess) -> Result<(), ToolError> {
    let refused = |e: &dyn std::fmt::Display| ToolError::SandboxFailed(e.to_string());
    let existing = |dirs: &[&str]| -> Vec<String> {
        dirs.iter()
            .filter(|d| Path::new(d).exists())
            .map(|d| (*d).to_owned())
            .collect()
    };
    let read_exec = AccessFs::from_read(TARGET_ABI);
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .map_err(|e| refused(&e))?
        .create()
        .map_err(|e| refused(&e))?
        .add_rules(path_beneath_rules(existing(SYSTEM_DIRS), read_exec))
        .map_err(|e| refused(&e))?
        .add_rules(path_beneath_rules(existing(&["/dev"]), read_exec | AccessFs::WriteFile))
        .map_err(|e| refused(&e))?;
    let workspace_rights = match access {
        WorkspaceAccess::None => None,
        WorkspaceAccess::ReadOnly => Some(AccessFs::from_read(TARGET_ABI)),
        WorkspaceAccess::ReadWrite => Some(AccessFs::from_all(TARGET_ABI)),
    };
    if let Some(rights) = workspace_rights {
        ruleset = ruleset
            .add_rules(path_beneath_rules([workspace], rights))
            .map_err(|e| refused(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| refused(&e))?;
    if status.ruleset == RulesetStatus::NotEnforced || !status.no_new_privs {
        return Err(ToolError::SandboxFailed(
            "the kernel did not enforce the Landlock ruleset".into(),
        ));
    }
    Ok(())
}
