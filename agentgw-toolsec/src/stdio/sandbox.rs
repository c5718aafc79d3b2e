//! What a stdio server's process may do, enforced by the kernel (Linux).
//!
//! Landlock rulesets and seccomp filters apply to the thread that installs them and are
//! inherited by every process it starts; neither can be lifted afterwards. So each server is
//! spawned from a short-lived thread that first restricts itself (see [`Restrictions::apply`]),
//! and the gateway's own threads stay unrestricted. Resource limits are per process: they are
//! set on the child right after it starts ([`Restrictions::limit`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use rustix::process::{Pid, Resource, Rlimit, prlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::SandboxError;
use crate::config::{FileSystemAccess, SandboxLimits};

/// What a program needs to start that `allowedPaths` need not list: readable (and
/// executable), never writable. Paths missing on this machine are skipped.
pub(crate) const RUNTIME_PATHS: [&str; 11] = [
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/dev/urandom",
    "/dev/random",
];

/// The restrictions of one server, checked when the backend is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Restrictions {
    deny_network: bool,
    files: Option<FileRules>,
    rlimits: Vec<(Resource, u64)>,
}

#[derive(Debug, Clone)]
struct FileRules {
    read_only: bool,
    allowed_paths: Option<Vec<PathBuf>>,
    /// The server's executable, which must stay readable and executable.
    executable: PathBuf,
}

impl Restrictions {
    /// The restrictions `limits` ask for, for the program at `executable`.
    pub(crate) fn new(limits: &SandboxLimits, executable: &Path) -> Self {
        let files = limits
            .file_system_access
            .as_ref()
            .filter(|access| access.restricts())
            .map(|access: &FileSystemAccess| FileRules {
                read_only: access.read_only,
                allowed_paths: access.allowed_paths.clone(),
                executable: executable.to_owned(),
            });
        let mut rlimits = Vec::new();
        if let Some(bytes) = limits.max_memory {
            rlimits.push((Resource::As, bytes));
        }
        if let Some(cpu) = limits.max_cpu_time {
            rlimits.push((Resource::Cpu, whole_seconds(cpu)));
        }
        if let Some(files) = limits.max_open_files {
            rlimits.push((Resource::Nofile, files));
        }
        Self {
            deny_network: limits.network_access == Some(false),
            files,
            rlimits,
        }
    }

    /// Whether nothing is restricted.
    pub(crate) fn is_empty(&self) -> bool {
        !self.deny_network && self.files.is_none() && self.rlimits.is_empty()
    }

    /// Restricts the calling thread, and so every process it starts from now on, for good.
    /// Fails (and the server must not be started) when the kernel cannot enforce a
    /// restriction: Landlock below ABI 3 (Linux 6.2) for `fileSystemAccess`, no seccomp for
    /// `networkAccess: false`.
    pub(crate) fn apply(&self) -> Result<(), SandboxError> {
        if self.files.is_some() || self.deny_network {
            self.landlock()?;
        }
        if self.deny_network {
            let filter = socket_filter()?;
            seccompiler::apply_filter(&filter).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
        }
        Ok(())
    }

    /// Checks, on a throwaway thread, that [`apply`](Self::apply) succeeds on this kernel.
    pub(crate) fn probe(&self) -> Result<(), SandboxError> {
        if self.files.is_none() && !self.deny_network {
            return Ok(());
        }
        let restrictions = self.clone();
        std::thread::Builder::new()
            .name("agentgw-stdio-probe".into())
            .spawn(move || restrictions.apply())
            .map_err(|e| SandboxError::Spawn(e.to_string()))?
            .join()
            .unwrap_or_else(|_| Err(SandboxError::Spawn("the probe thread panicked".into())))
    }

    /// Sets the resource limits of the process `pid` (a server just started).
    pub(crate) fn limit(&self, pid: u32) -> Result<(), SandboxError> {
        if self.rlimits.is_empty() {
            return Ok(());
        }
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| SandboxError::Rlimit(format!("invalid process id {pid}")))?;
        for &(resource, value) in &self.rlimits {
            let limit = Rlimit {
                current: Some(value),
                maximum: Some(value),
            };
            prlimit(Some(pid), resource, limit)
                .map_err(|e| SandboxError::Rlimit(format!("{resource:?}: {e}")))?;
        }
        Ok(())
    }

    fn landlock(&self) -> Result<(), SandboxError> {
        let error = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
        // Write rights must be enforceable (truncate included: ABI 3); rights of newer kernels
        // (device ioctls, connecting to Unix sockets by path) are handled when available.
        let mut ruleset = Ruleset::default();
        if self.files.is_some() {
            ruleset = ruleset
                .set_compatibility(CompatLevel::HardRequirement)
                .handle_access(AccessFs::from_all(ABI::V3))
                .map_err(error)?
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(AccessFs::from_all(ABI::V10))
                .map_err(error)?;
        }
        if self.deny_network {
            // Seccomp is what denies sockets; on kernels that have them, TCP bind/connect
            // rules and the abstract Unix socket scope are a second wall.
            ruleset = ruleset
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(AccessNet::from_all(ABI::V4))
                .map_err(error)?
                .scope(Scope::AbstractUnixSocket)
                .map_err(error)?;
        }
        // A sandboxed server cannot signal processes outside its sandbox (the gateway).
        ruleset = ruleset
            .set_compatibility(CompatLevel::BestEffort)
            .scope(Scope::Signal)
            .map_err(error)?;
        let mut created = ruleset.create().map_err(error)?;
        if let Some(files) = &self.files {
            let read = AccessFs::from_read(ABI::V10);
            let all = AccessFs::from_all(ABI::V10);
            created = created
                .add_rules(path_beneath_rules(["/dev/null"], all))
                .map_err(error)?;
            match &files.allowed_paths {
                None => {
                    created = created
                        .add_rules(path_beneath_rules(["/"], read))
                        .map_err(error)?;
                }
                Some(paths) => {
                    created = created
                        .add_rules(path_beneath_rules(RUNTIME_PATHS, read))
                        .map_err(error)?
                        .add_rules(path_beneath_rules([&files.executable], read))
                        .map_err(error)?;
                    let access = if files.read_only { read } else { all };
                    for path in paths {
                        let fd = PathFd::new(path).map_err(|e| {
                            SandboxError::Landlock(format!("{}: {e}", path.display()))
                        })?;
                        let access = if Path::new(path).is_dir() {
                            access
                        } else {
                            access & AccessFs::from_file(ABI::V10)
                        };
                        created = created
                            .add_rule(PathBeneath::new(fd, access))
                            .map_err(error)?;
                    }
                }
            }
        }
        let status = created.restrict_self().map_err(error)?;
        if self.files.is_some() && status.ruleset == RulesetStatus::NotEnforced {
            return Err(SandboxError::Landlock(
                "this kernel does not enforce Landlock rules".into(),
            ));
        }
        Ok(())
    }
}

/// `socket(2)` of any family but `AF_UNIX` fails with `EACCES`, and so does `io_uring_setup`
/// (io_uring can open sockets without the `socket` system call).
fn socket_filter() -> Result<BpfProgram, SandboxError> {
    let error = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )
    .map_err(error)?;
    let rules = [
        (
            libc::SYS_socket,
            vec![SeccompRule::new(vec![not_unix]).map_err(error)?],
        ),
        (libc::SYS_io_uring_setup, Vec::new()),
    ];
    let filter = SeccompFilter::new(
        rules.into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(error)?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| error(e))
}

/// `RLIMIT_CPU` counts whole seconds: a limit is rounded up, and is at least one second.
fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SandboxLimits;

    #[test]
    fn cpu_time_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
    }

    #[test]
    fn limits_become_restrictions() {
        let none = Restrictions::new(&SandboxLimits::default(), Path::new("/bin/true"));
        assert!(none.is_empty());
        assert!(none.probe().is_ok());
        let full = Restrictions::new(
            &SandboxLimits::default()
                .network_access(false)
                .file_system_access(FileSystemAccess::read_only())
                .max_memory(1 << 30)
                .max_open_files(64),
            Path::new("/bin/true"),
        );
        assert!(full.deny_network && full.files.is_some());
        assert_eq!(full.rlimits.len(), 2);
        // `{readOnly: false}` without paths and `networkAccess: true` restrict nothing.
        let open = Restrictions::new(
            &SandboxLimits::default()
                .network_access(true)
                .file_system_access(FileSystemAccess::read_write_beneath(Vec::<PathBuf>::new())),
            Path::new("/bin/true"),
        );
        assert!(!open.deny_network);
    }

    /// On this project's machines (Linux 6.x) every restriction is enforceable; the probe
    /// restricts a throwaway thread and leaves this one alone.
    #[test]
    fn the_probe_restricts_a_throwaway_thread_only() {
        let restrictions = Restrictions::new(
            &SandboxLimits::default()
                .network_access(false)
                .file_system_access(FileSystemAccess::read_only()),
            Path::new("/bin/true"),
        );
        restrictions
            .probe()
            .expect("Landlock and seccomp on this kernel");
        // This thread still opens sockets and writes files.
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("unrestricted");
        drop(socket);
        let dir = std::env::temp_dir().join(format!("agentgw-probe-{}", std::process::id()));
        std::fs::write(&dir, b"x").expect("unrestricted");
        std::fs::remove_file(&dir).unwrap();
    }
}
