//! `sandbox`: limits the gateway enforces on tool calls.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::yes;

/// `sandbox`: limits the gateway enforces on tool calls.
///
/// [`Default`] is the value of `sandbox: {}`: on, strict, without limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `strict` enforces the limits; `permissive` only records violations (audit, metrics).
    #[serde(default)]
    pub mode: SandboxMode,
    /// The limits.
    #[serde(default)]
    pub limits: SandboxLimits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: SandboxMode::default(),
            limits: SandboxLimits::default(),
        }
    }
}

impl SandboxConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `mode`.
    #[must_use]
    pub fn mode(mut self, mode: SandboxMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets `limits`.
    #[must_use]
    pub fn limits(mut self, limits: SandboxLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// How sandbox limits apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// A call over a limit is cancelled or its output replaced by a JSON-RPC error.
    #[default]
    Strict,
    /// Violations are audited and counted, nothing is enforced (a dry run).
    Permissive,
}

/// `sandbox.limits`. [`Default`]: no limit.
///
/// `maxExecutionTime` and `maxOutputSize` apply to every MCP upstream. The other limits
/// restrict the process of a stdio server the gateway launches (the `stdio` module, cargo
/// feature `stdio`); on an HTTP upstream they load with a warning and have no effect
/// ([`STDIO_ONLY_LIMITS`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SandboxLimits {
    /// The longest a `tools/call` may take (`30s`, `500ms`, `2m`, or a number of seconds); the
    /// call is then cancelled.
    #[serde(default, with = "agentgw_core::config::option_duration")]
    pub max_execution_time: Option<Duration>,
    /// The largest `tools/call` response, in bytes (`1Mi`, `512Ki`, `10M`, `65536`).
    #[serde(default, with = "agentgw_core::config::option_byte_size")]
    pub max_output_size: Option<u64>,
    /// `networkAccess: false`: a stdio server may open no socket but Unix domain sockets (no
    /// IP, netlink, packet or other family). Absent or `true`: not restricted.
    #[serde(default)]
    pub network_access: Option<bool>,
    /// `fileSystemAccess`: what a stdio server may do with files (`readOnly`, or
    /// `{readOnly, allowedPaths}`). Absent: not restricted.
    #[serde(default)]
    pub file_system_access: Option<FileSystemAccess>,
    /// `maxMemory`: the address space of a stdio server's process, in bytes (`512Mi`;
    /// `RLIMIT_AS`: virtual memory, so leave room for thread stacks and allocator arenas).
    #[serde(default, with = "agentgw_core::config::option_byte_size")]
    pub max_memory: Option<u64>,
    /// `maxCpuTime`: the CPU time a stdio server's process may use over its life (`60s`;
    /// `RLIMIT_CPU`, whole seconds, rounded up); then the kernel ends it.
    #[serde(default, with = "agentgw_core::config::option_duration")]
    pub max_cpu_time: Option<Duration>,
    /// `maxOpenFiles`: how many file descriptors a stdio server's process may hold at once
    /// (`RLIMIT_NOFILE`).
    #[serde(default)]
    pub max_open_files: Option<u64>,
}

/// The keys of `sandbox.limits` that restrict a stdio server's process, and only that: on an
/// HTTP upstream each loads with a warning naming it (see
/// [`ToolSecurityLayer::warnings`](crate::ToolSecurityLayer::warnings)).
pub const STDIO_ONLY_LIMITS: [&str; 5] = [
    "networkAccess",
    "fileSystemAccess",
    "maxMemory",
    "maxCpuTime",
    "maxOpenFiles",
];

impl SandboxLimits {
    /// Whether the stdio-only key `field` (one of [`STDIO_ONLY_LIMITS`]) is set.
    pub fn is_set(&self, field: &str) -> bool {
        match field {
            "networkAccess" => self.network_access.is_some(),
            "fileSystemAccess" => self.file_system_access.is_some(),
            "maxMemory" => self.max_memory.is_some(),
            "maxCpuTime" => self.max_cpu_time.is_some(),
            "maxOpenFiles" => self.max_open_files.is_some(),
            _ => false,
        }
    }
}

/// `sandbox.limits.fileSystemAccess`: `readOnly` (read anything, write nothing), or
/// `{readOnly, allowedPaths}`: only beneath `allowedPaths` (plus what a program needs to start,
/// see the `stdio` module), read-only unless `readOnly: false`.
///
/// ```
/// use agentgw_toolsec::config::FileSystemAccess;
///
/// let read_only: FileSystemAccess = serde_saphyr::from_str("readOnly").unwrap();
/// assert_eq!(read_only, FileSystemAccess::read_only());
/// let scoped: FileSystemAccess =
///     serde_saphyr::from_str("{readOnly: false, allowedPaths: [/srv/data]}").unwrap();
/// assert_eq!(scoped, FileSystemAccess::read_write_beneath(["/srv/data"]));
/// // `readOnly` defaults to true in the long form.
/// let scoped: FileSystemAccess = serde_saphyr::from_str("allowedPaths: [/srv/data]").unwrap();
/// assert!(scoped.read_only);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileSystemAccess {
    /// No file may be written, created, removed or truncated (`/dev/null` excepted).
    pub read_only: bool,
    /// When given, files outside these paths cannot be opened at all.
    pub allowed_paths: Option<Vec<PathBuf>>,
}

impl FileSystemAccess {
    /// `fileSystemAccess: readOnly`.
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            allowed_paths: None,
        }
    }

    /// `{readOnly: true, allowedPaths: paths}`.
    pub fn read_only_beneath<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        Self {
            read_only: true,
            allowed_paths: Some(paths.into_iter().map(Into::into).collect()),
        }
    }

    /// `{readOnly: false, allowedPaths: paths}`.
    pub fn read_write_beneath<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Self {
        Self {
            read_only: false,
            allowed_paths: Some(paths.into_iter().map(Into::into).collect()),
        }
    }

    /// Whether this restricts anything (`{readOnly: false}` without paths does not).
    pub fn restricts(&self) -> bool {
        self.read_only || self.allowed_paths.is_some()
    }
}

impl<'de> Deserialize<'de> for FileSystemAccess {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Long {
            #[serde(default = "yes")]
            read_only: bool,
            #[serde(default)]
            allowed_paths: Option<Vec<PathBuf>>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Short(String),
            Long(Long),
        }
        match Form::deserialize(deserializer)? {
            Form::Short(word) if word == "readOnly" => Ok(Self::read_only()),
            Form::Short(word) => Err(serde::de::Error::custom(format!(
                "unknown fileSystemAccess {word:?}: use readOnly or {{readOnly, allowedPaths}}"
            ))),
            Form::Long(long) => Ok(Self {
                read_only: long.read_only,
                allowed_paths: long.allowed_paths,
            }),
        }
    }
}

impl SandboxLimits {
    /// Sets `maxExecutionTime`.
    #[must_use]
    pub fn max_execution_time(mut self, max: Duration) -> Self {
        self.max_execution_time = Some(max);
        self
    }

    /// Sets `maxOutputSize`, in bytes.
    #[must_use]
    pub fn max_output_size(mut self, bytes: u64) -> Self {
        self.max_output_size = Some(bytes);
        self
    }

    /// Sets `networkAccess`.
    #[must_use]
    pub fn network_access(mut self, allowed: bool) -> Self {
        self.network_access = Some(allowed);
        self
    }

    /// Sets `fileSystemAccess`.
    #[must_use]
    pub fn file_system_access(mut self, access: FileSystemAccess) -> Self {
        self.file_system_access = Some(access);
        self
    }

    /// Sets `maxMemory`, in bytes.
    #[must_use]
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Sets `maxCpuTime`.
    #[must_use]
    pub fn max_cpu_time(mut self, max: Duration) -> Self {
        self.max_cpu_time = Some(max);
        self
    }

    /// Sets `maxOpenFiles`.
    #[must_use]
    pub fn max_open_files(mut self, max: u64) -> Self {
        self.max_open_files = Some(max);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_SANDBOX, seed};

    #[test]
    fn seed_sandbox_block_deserializes() {
        let sandbox = seed(SEED_SANDBOX).sandbox.expect("sandbox");
        assert_eq!(sandbox.mode, SandboxMode::Strict);
        assert_eq!(
            sandbox.limits.max_execution_time,
            Some(Duration::from_secs(30))
        );
        assert_eq!(sandbox.limits.max_output_size, Some(1 << 20));
        assert_eq!(sandbox.limits.network_access, Some(false));
        assert_eq!(
            sandbox.limits.file_system_access,
            Some(FileSystemAccess::read_only())
        );
    }

    #[test]
    fn sizes_and_durations() {
        let limits: SandboxLimits =
            serde_saphyr::from_str("maxExecutionTime: 250ms\nmaxOutputSize: 4096\n").unwrap();
        assert_eq!(limits.max_execution_time, Some(Duration::from_millis(250)));
        assert_eq!(limits.max_output_size, Some(4096));
        let error = serde_saphyr::from_str::<SandboxLimits>("maxExecutionTime: soon\n")
            .expect_err("bad duration");
        assert!(error.to_string().contains("soon"), "{error}");
        // The shared rule of agentgw: suffixed sizes and seconds as numbers.
        let limits: SandboxLimits =
            serde_saphyr::from_str("maxExecutionTime: 1.5\nmaxOutputSize: 512Ki\n").unwrap();
        assert_eq!(limits.max_execution_time, Some(Duration::from_millis(1500)));
        assert_eq!(limits.max_output_size, Some(512 << 10));
        assert!(serde_saphyr::from_str::<SandboxLimits>("maxOutputSize: -1\n").is_err());
    }

    #[test]
    fn stdio_limits_parse_in_both_forms() {
        let limits: SandboxLimits = serde_saphyr::from_str(
            "networkAccess: true\nfileSystemAccess: {allowedPaths: [/srv/a, /srv/b]}\n\
             maxMemory: 256Mi\nmaxCpuTime: 10s\nmaxOpenFiles: 64\n",
        )
        .unwrap();
        assert_eq!(limits.network_access, Some(true));
        assert_eq!(
            limits.file_system_access,
            Some(FileSystemAccess::read_only_beneath(["/srv/a", "/srv/b"]))
        );
        assert_eq!(limits.max_memory, Some(256 << 20));
        assert_eq!(limits.max_cpu_time, Some(Duration::from_secs(10)));
        assert_eq!(limits.max_open_files, Some(64));
        for field in STDIO_ONLY_LIMITS {
            assert!(limits.is_set(field), "{field}");
            assert!(!SandboxLimits::default().is_set(field), "{field}");
        }
        let error = serde_saphyr::from_str::<SandboxLimits>("fileSystemAccess: readWrite\n")
            .expect_err("unknown word");
        assert!(error.to_string().contains("fileSystemAccess"), "{error}");
        assert!(
            serde_saphyr::from_str::<SandboxLimits>("fileSystemAccess: {paths: [/a]}\n").is_err()
        );
        assert!(
            !FileSystemAccess {
                read_only: false,
                allowed_paths: None
            }
            .restricts()
        );
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = SandboxConfig::default()
            .mode(SandboxMode::Permissive)
            .limits(
                SandboxLimits::default()
                    .max_execution_time(Duration::from_millis(500))
                    .max_output_size(4096),
            );
        let parsed = seed(
            "sandbox:\n  mode: permissive\n  limits:\n    maxExecutionTime: 500ms\n    maxOutputSize: 4Ki\n",
        );
        assert_eq!(parsed.sandbox, Some(built));
        assert_eq!(
            seed("sandbox: {}\n").sandbox,
            Some(SandboxConfig::default())
        );
    }
}
