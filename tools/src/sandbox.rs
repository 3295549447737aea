//! Kernel confinement of sandboxed tool calls with Landlock.
//!
//! Landlock restricts the calling thread and everything it starts afterwards, so a sandboxed call
//! runs on a thread of its own: that thread restricts itself (and sets `no_new_privs`), then does
//! the file work or starts the command. The gateway's other threads are not affected.
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
pub(crate) fn confine_current_thread(workspace: &Path, access: WorkspaceAccess) -> Result<(), ToolError> {
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
