//! The tools Clawgate runs for agents: `read`, `ls`, `write` and `edit` confined to the agent's
//! workspace, and `exec` / `process` ([`ProcessTable`]) running commands there.
//!
//! These are blocking calls; a runtime runs them off its event loop. The engine has already
//! decided that the call is allowed ([`clawgate_engine::tool_policy`]); this crate makes sure the
//! path stays inside the workspace and the access level is respected:
//!
//! - a path is relative to the workspace; absolute paths and `..` components are refused;
//! - a path whose existing part resolves (through symlinks) outside the workspace is refused, and
//!   so is writing through a symlink;
//! - output is capped and marked `truncated`.
//!
//! The checks are made on the path before it is opened, so a process that swaps a directory for a
//! symlink between the check and the open could still win the race; sandboxed calls are confined
//! by the kernel as well, which closes that gap.

#![forbid(unsafe_code)]

mod exec;
pub mod sandbox;
pub use exec::{OutputSink, ProcessTable, DEFAULT_TIMEOUT, MAX_TIMEOUT, SANDBOX_LIMITS};

use clawgate_engine::tool_calls::{ToolFailure, ToolFailureKind, ToolRun};
use clawgate_engine::tool_policy::WorkspaceAccess;
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

/// Most bytes a tool returns; more is cut and marked `truncated`.
pub const DEFAULT_OUTPUT_CAP: usize = 256 * 1024;

/// Most directory entries `ls` returns.
pub const MAX_LS_ENTRIES: usize = 1000;

/// Why a tool call failed.
#[derive(Debug)]
pub enum ToolError {
    /// The arguments do not fit the tool's schema.
    InvalidArguments(String),
    /// The path leaves the workspace or is not acceptable.
    PathRefused(String),
    /// The workspace access does not permit the call.
    AccessDenied(&'static str),
    /// `edit` did not find exactly one occurrence.
    EditMismatch(String),
    /// The file system said no.
    Io(io::Error),
    /// The sandbox the call needs could not be set up; the call did not run.
    SandboxFailed(String),
}

impl ToolError {
    /// The kind of failure the engine reports.
    pub fn kind(&self) -> ToolFailureKind {
        match self {
            ToolError::InvalidArguments(_) => ToolFailureKind::InvalidArguments,
            ToolError::PathRefused(_) => ToolFailureKind::PathRefused,
            ToolError::AccessDenied(_) => ToolFailureKind::AccessDenied,
            ToolError::EditMismatch(_) => ToolFailureKind::EditMismatch,
            ToolError::Io(e) if e.kind() == io::ErrorKind::NotFound => ToolFailureKind::NotFound,
            ToolError::Io(_) => ToolFailureKind::Io,
            ToolError::SandboxFailed(_) => ToolFailureKind::SandboxUnavailable,
        }
    }

    /// The stable code of the error, for `ToolsInvokeResult.error.code`.
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::InvalidArguments(m) => write!(f, "invalid arguments: {m}"),
            ToolError::PathRefused(m) => write!(f, "path refused: {m}"),
            ToolError::AccessDenied(m) => write!(f, "access denied: {m}"),
            ToolError::EditMismatch(m) => f.write_str(m),
            ToolError::Io(e) => write!(f, "{e}"),
            ToolError::SandboxFailed(m) => write!(f, "sandbox could not be set up: {m}"),
        }
    }
}

impl From<io::Error> for ToolError {
    fn from(e: io::Error) -> Self {
        ToolError::Io(e)
    }
}

/// An agent's workspace directory and what a call may do in it.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    access: WorkspaceAccess,
    output_cap: usize,
}

impl Workspace {
    /// Opens `root` (which must be an existing directory) with `access`.
    pub fn open(root: &Path, access: WorkspaceAccess) -> io::Result<Workspace> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "workspace is not a directory",
            ));
        }
        Ok(Workspace {
            root,
            access,
            output_cap: DEFAULT_OUTPUT_CAP,
        })
    }

    /// The same workspace with another output cap.
    pub fn with_output_cap(mut self, bytes: usize) -> Workspace {
        self.output_cap = bytes;
        self
    }

    /// The workspace directory, resolved.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `relative` points inside the workspace, or why it may not be used.
    ///
    /// `for_write` also refuses a final component that is a symlink, so a write cannot follow
    /// one out of the workspace.
    pub fn resolve(&self, relative: &str, for_write: bool) -> Result<PathBuf, ToolError> {
        if relative.contains('\0') {
            return Err(ToolError::PathRefused("the path contains a NUL byte".into()));
        }
        let rel = Path::new(relative);
        let mut joined = self.root.clone();
        for component in rel.components() {
            match component {
                Component::Normal(part) => joined.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(ToolError::PathRefused(format!("{relative:?} contains \"..\"")));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(ToolError::PathRefused(format!(
                        "{relative:?} is absolute; paths are relative to the workspace"
                    )));
                }
            }
        }
        // The deepest part of the path that exists must resolve inside the workspace.
        let mut existing = joined.as_path();
        let mut missing = Vec::new();
        loop {
            match fs::symlink_metadata(existing) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        missing.push(name.to_owned());
                        existing = parent;
                    }
                    _ => return Err(ToolError::Io(e)),
                },
                Err(e) => return Err(ToolError::Io(e)),
            }
        }
        let resolved = existing.canonicalize()?;
        if !resolved.starts_with(&self.root) {
            return Err(ToolError::PathRefused(format!(
                "{relative:?} leads outside the workspace"
            )));
        }
        if for_write && missing.is_empty() && fs::symlink_metadata(&joined)?.file_type().is_symlink() {
            return Err(ToolError::PathRefused(format!(
                "{relative:?} is a symlink; it is not written through"
            )));
        }
        let mut out = resolved;
        out.extend(missing.iter().rev());
        Ok(out)
    }

    fn require(&self, needed: WorkspaceAccess, what: &'static str) -> Result<(), ToolError> {
        if self.access < needed {
            Err(ToolError::AccessDenied(what))
        } else {
            Ok(())
        }
    }

    /// Runs the file tool `name` with `args`; the answer is the tool's JSON output.
    pub fn run(&self, name: &str, args: &Value) -> Result<Value, ToolError> {
        match name {
            "read" => self.read(parse(args)?),
            "ls" => self.ls(parse(args)?),
            "write" => self.write(parse(args)?),
            "edit" => self.edit(parse(args)?),
            other => Err(ToolError::InvalidArguments(format!("{other} is not a file tool"))),
        }
    }

    fn read(&self, args: ReadArgs) -> Result<Value, ToolError> {
        self.require(WorkspaceAccess::ReadOnly, "reading needs workspace access")?;
        let path = self.resolve(&args.path, false)?;
        let mut file = fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let offset = args.offset.unwrap_or(0);
        file.seek(SeekFrom::Start(offset))?;
        let want = args.limit.unwrap_or(usize::MAX).min(self.output_cap);
        let mut buf = Vec::new();
        file.take(want as u64).read_to_end(&mut buf)?;
        let end = offset.saturating_add(buf.len() as u64);
        let text = String::from_utf8(buf)
            .map_err(|_| ToolError::InvalidArguments(format!("{} is not UTF-8 text in the range read", args.path)))?;
        Ok(json!({"path": args.path, "content": text, "size": size, "truncated": end < size}))
    }

    fn ls(&self, args: LsArgs) -> Result<Value, ToolError> {
        self.require(WorkspaceAccess::ReadOnly, "listing needs workspace access")?;
        let rel = args.path.unwrap_or_else(|| ".".into());
        let path = self.resolve(&rel, false)?;
        let mut entries = Vec::new();
        let mut total = 0usize;
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            total += 1;
            let meta = entry.metadata()?;
            let kind = if meta.file_type().is_symlink() {
                "symlink"
            } else if meta.is_dir() {
                "dir"
            } else if meta.is_file() {
                "file"
            } else {
                "other"
            };
            entries.push((entry.file_name().to_string_lossy().into_owned(), kind, meta.len()));
        }
        entries.sort();
        let truncated = entries.len() > MAX_LS_ENTRIES;
        entries.truncate(MAX_LS_ENTRIES);
        let list: Vec<Value> = entries
            .into_iter()
            .map(|(name, kind, size)| json!({"name": name, "kind": kind, "size": size}))
            .collect();
        Ok(json!({"path": rel, "entries": list, "total": total, "truncated": truncated}))
    }

    fn write(&self, args: WriteArgs) -> Result<Value, ToolError> {
        self.require(WorkspaceAccess::ReadWrite, "writing needs read-write workspace access")?;
        let path = self.resolve(&args.path, true)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        write_replacing(&path, args.content.as_bytes())?;
        Ok(json!({"path": args.path, "bytes": args.content.len()}))
    }

    fn edit(&self, args: EditArgs) -> Result<Value, ToolError> {
        self.require(WorkspaceAccess::ReadWrite, "editing needs read-write workspace access")?;
        if args.old_text.is_empty() {
            return Err(ToolError::InvalidArguments("oldText must not be empty".into()));
        }
        let path = self.resolve(&args.path, true)?;
        let text = fs::read_to_string(&path)?;
        let count = text.matches(args.old_text.as_str()).count();
        if count != 1 {
            return Err(ToolError::EditMismatch(if count == 0 {
                format!("oldText was not found in {}", args.path)
            } else {
                format!(
                    "oldText occurs {count} times in {}; give more context so it occurs once",
                    args.path
                )
            }));
        }
        let updated = text.replacen(args.old_text.as_str(), &args.new_text, 1);
        write_replacing(&path, updated.as_bytes())?;
        Ok(json!({"path": args.path, "bytes": updated.len()}))
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a reader never
/// sees half a file.
fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.clawgate-tmp"));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn parse<T: for<'de> Deserialize<'de>>(args: &Value) -> Result<T, ToolError> {
    T::deserialize(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    offset: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LsArgs {
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EditArgs {
    path: String,
    old_text: String,
    new_text: String,
}

/// What a tool run gives back to `Gateway::handle_tool_result`.
pub type ToolOutcome = Result<Value, ToolFailure>;

/// Runs the engine's [`ToolRun`]s: file tools in the agent's workspace, `exec` / `process`
/// through one shared [`ProcessTable`].
#[derive(Clone)]
pub struct ToolRunner {
    default_workspace: Option<PathBuf>,
    processes: ProcessTable,
    output_cap: usize,
    /// How sandboxed commands start; without it they are refused.
    exec_sandbox: Option<sandbox::ExecSandbox>,
}

impl ToolRunner {
    /// A runner whose agents without a configured workspace use `default_workspace`
    /// (usually `<state dir>/workspace`; created when first used).
    pub fn new(default_workspace: Option<PathBuf>) -> ToolRunner {
        ToolRunner {
            default_workspace,
            processes: ProcessTable::new(),
            output_cap: DEFAULT_OUTPUT_CAP,
            exec_sandbox: None,
        }
    }

    /// Sandboxed commands start confined by `sandbox` (without one they are refused).
    pub fn with_exec_sandbox(mut self, sandbox: sandbox::ExecSandbox) -> ToolRunner {
        self.exec_sandbox = Some(sandbox);
        self
    }

    /// Carries out `run` (blocking); the result goes to `Gateway::handle_tool_result`.
    /// Stops the command tool call `call` runs, if any (its run was aborted).
    pub fn cancel(&self, call: u64) -> bool {
        self.processes.kill_call(call)
    }

    pub fn run(&self, run: &ToolRun) -> Result<Value, ToolFailure> {
        self.run_with_output(run, None)
    }

    /// [`ToolRunner::run`], with what a command prints also handed to `live` as it comes.
    pub fn run_with_output(&self, run: &ToolRun, live: Option<OutputSink>) -> Result<Value, ToolFailure> {
        self.try_run(run, live).map_err(|e| ToolFailure {
            kind: e.kind(),
            message: e.to_string(),
        })
    }

    fn try_run(&self, run: &ToolRun, live: Option<OutputSink>) -> Result<Value, ToolError> {
        let dir = match &run.workspace {
            Some(configured) => match configured.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(rest))
                    .ok_or_else(|| ToolError::PathRefused("the workspace starts with ~ and HOME is not set".into()))?,
                None => PathBuf::from(configured),
            },
            None => self.default_workspace.clone().ok_or_else(|| {
                ToolError::PathRefused(format!(
                    "agent {} has no workspace and there is no state directory",
                    run.agent
                ))
            })?,
        };
        fs::create_dir_all(&dir)?;
        let workspace = Workspace::open(&dir, run.access)?.with_output_cap(self.output_cap);
        if run.sandboxed && run.tool == "exec" {
            // Confined in namespaces and by Landlock in the process it starts (see `sandbox`).
            let sandbox = self
                .exec_sandbox
                .as_ref()
                .ok_or_else(|| ToolError::SandboxFailed("this runner has no way to start confined commands".into()))?;
            let wrapper = sandbox.wrapper(workspace.root(), run.access, false);
            return self.processes.exec_wrapped(
                workspace.root(),
                &run.args,
                self.output_cap,
                &wrapper,
                Some(run.call),
                live,
            );
        }
        if run.sandboxed {
            // Landlock binds the thread it is applied on: use one that ends with the call.
            return std::thread::scope(|s| {
                s.spawn(|| {
                    sandbox::confine_current_thread(workspace.root(), run.access)?;
                    self.dispatch(&workspace, run, live)
                })
                .join()
                .unwrap_or_else(|_| Err(ToolError::SandboxFailed("the sandboxed call panicked".into())))
            });
        }
        self.dispatch(&workspace, run, live)
    }

    fn dispatch(&self, workspace: &Workspace, run: &ToolRun, live: Option<OutputSink>) -> Result<Value, ToolError> {
        match run.tool {
            "exec" => self.processes.exec_call(
                workspace.root(),
                &run.args,
                self.output_cap,
                run.sandboxed,
                Some(run.call),
                live,
            ),
            "process" => self.processes.process(&run.args),
            other => workspace.run(other, &run.args),
        }
    }
}

/// Appends one line to `<state dir>/logs/tool-audit.jsonl` (created 0600).
pub fn append_audit(state_dir: &Path, line: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = state_dir.join("logs");
    fs::create_dir_all(&dir)?;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("tool-audit.jsonl"))?;
    // One write per line, so concurrent appends do not interleave.
    file.write_all(format!("{line}\n").as_bytes())
}
