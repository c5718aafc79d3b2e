//! Where the pins of a layer come from: learned in memory from the first `tools/list` that
//! shows a tool (the default), a reviewed [`PinFile`] every replica loads read-only, or learned
//! pins shared by every replica through Redis (feature `redis`, see `shared_pins`).

use std::collections::HashMap;
#[cfg(feature = "redis")]
use std::sync::Arc;
use std::time::Duration;

use agentgw_core::reload::{ReloadError, Reloading};

use crate::config::{FlagAction, PinningConfig};
use crate::digest::Digest;
use crate::error::Error;
use crate::pins::PinFile;

/// How often a pin file is checked for a new version by default.
const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// The prefix of the Redis hashes of shared pins by default.
#[cfg(feature = "redis")]
const DEFAULT_KEY_PREFIX: &str = "agentgw:pins:";
/// How long a read or write of shared pins may take by default.
#[cfg(feature = "redis")]
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared pins of one upstream, read before a listing is inspected.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum SharedSnapshot {
    /// The upstream's shared pins, by tool name.
    Loaded(HashMap<String, Digest>),
    /// The store could not be read: tools are withheld.
    Unavailable,
}

/// The compiled `pinning` block.
#[derive(Debug)]
pub(crate) struct Pinning {
    /// What happens to a definition that differs from its pin.
    pub(crate) action: FlagAction,
    pub(crate) store: PinStore,
}

/// Where pins come from.
#[derive(Debug)]
pub(crate) enum PinStore {
    /// The first definition a layer sees is pinned in its memory.
    Learned,
    /// Pins are read from a file; nothing is learned.
    File {
        pins: Reloading<PinFile>,
        /// What happens to a tool the file does not pin.
        unpinned: FlagAction,
    },
    /// Pins are learned and shared through Redis.
    #[cfg(feature = "redis")]
    Shared(Arc<crate::shared_pins::RedisPins>),
}

/// How a listed definition compares with its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum PinCheck {
    /// It is the pinned definition.
    Same,
    /// No pin yet and pins are learned: pin this one.
    Learn,
    /// The pin file has no pin for the tool.
    Unpinned,
    /// It differs from the pin.
    Changed,
    /// No shared pin yet: expose it and claim it as the shared pin.
    Claim,
    /// The shared pins could not be read.
    Unavailable,
}

impl Pinning {
    /// The `pinning` block compiled (`None` when pinning is off). A pin file is read now and
    /// watched for new versions when a Tokio runtime is running (otherwise it stays as read).
    pub(crate) fn from_config(config: Option<&PinningConfig>) -> Result<Option<Self>, Error> {
        let Some(config) = config else {
            return Ok(Some(Self {
                action: FlagAction::Remove,
                store: PinStore::Learned,
            }));
        };
        if config.file.is_some() && config.redis.is_some() {
            return Err(Error::invalid(
                "pinning.redis",
                "pins come from pinning.file or from Redis, not both",
            ));
        }
        let file_only = [
            (config.unpinned.is_some(), "pinning.unpinned"),
            (config.reload_interval.is_some(), "pinning.reloadInterval"),
        ];
        if config.file.is_none()
            && let Some((_, path)) = file_only.iter().find(|(set, _)| *set)
        {
            return Err(Error::NoEffect {
                path: (*path).to_owned(),
                detail: "without pinning.file (learned pins have no file to follow)",
            });
        }
        if !config.enabled {
            let stores = [
                (config.file.is_some(), "pinning.file"),
                (config.redis.is_some(), "pinning.redis"),
            ];
            if let Some((_, path)) = stores.iter().find(|(set, _)| *set) {
                return Err(Error::NoEffect {
                    path: (*path).to_owned(),
                    detail: "while pinning.enabled is false",
                });
            }
            return Ok(None);
        }
        let store = match &config.file {
            None => match &config.redis {
                None => PinStore::Learned,
                Some(redis) => shared(redis)?,
            },
            Some(path) => {
                let pins = Reloading::open("tool pins", "pinning.file", path, |bytes| {
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| "the pin file is not UTF-8".to_owned())?;
                    PinFile::from_yaml(text).map_err(|e| {
                        use agentgw_core::ConfigError as _;
                        match e.path() {
                            "" => e.reason(),
                            at => format!("at {at}: {}", e.reason()),
                        }
                    })
                })
                .map_err(|e| Error::invalid("pinning.file", reload_reason(&e)))?;
                let interval = config.reload_interval.unwrap_or(DEFAULT_RELOAD_INTERVAL);
                if !interval.is_zero() {
                    match pins.watch(interval) {
                        Ok(_) | Err(ReloadError::NoRuntime { .. }) => {}
                        Err(e) => return Err(Error::invalid("pinning.file", reload_reason(&e))),
                    }
                }
                PinStore::File {
                    pins,
                    unpinned: config.unpinned.unwrap_or_default(),
                }
            }
        };
        Ok(Some(Self {
            action: config.action,
            store,
        }))
    }
}

/// The Redis store of `pinning.redis`.
#[cfg(feature = "redis")]
fn shared(config: &crate::config::RedisPinsConfig) -> Result<PinStore, Error> {
    let timeout = config.timeout.unwrap_or(DEFAULT_REDIS_TIMEOUT);
    if timeout.is_zero() {
        return Err(Error::invalid(
            "pinning.redis.timeout",
            "must be longer than 0",
        ));
    }
    let prefix = config
        .key_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
    let (url, field) = match (&config.url, &config.secret_ref) {
        (Some(url), None) => (url.clone(), "pinning.redis.url".to_owned()),
        (None, Some(secret)) => {
            let field = format!("pinning.redis.secretRef.{}", secret.field());
            let url = secret
                .read(crate::config::REDIS_SECRET_KEY)
                .map_err(|reason| Error::invalid(field.clone(), reason))?;
            (url, field)
        }
        _ => {
            return Err(Error::invalid(
                "pinning.redis",
                "exactly one of url and secretRef",
            ));
        }
    };
    let pins = crate::shared_pins::RedisPins::new(&url, prefix, timeout)
        .map_err(|reason| Error::invalid(field, reason))?;
    Ok(PinStore::Shared(Arc::new(pins)))
}

#[cfg(not(feature = "redis"))]
fn shared(_: &crate::config::RedisPinsConfig) -> Result<PinStore, Error> {
    Err(Error::invalid(
        "pinning.redis",
        "this build of agentgw-toolsec lacks the `redis` cargo feature",
    ))
}

/// The reason of a [`ReloadError`], with its file and without its field (the caller names
/// `pinning.file`).
fn reload_reason(error: &ReloadError) -> String {
    use agentgw_core::ConfigError as _;
    error.reason()
}

impl PinStore {
    /// How `digest`, the definition of `tool` listed by `upstream`, compares with its pin;
    /// `learned` is the pin this layer remembers (used when pins are learned), `shared` the
    /// shared pins read for this listing (used with Redis).
    pub(crate) fn check(
        &self,
        upstream: &str,
        tool: &str,
        learned: Option<Digest>,
        shared: Option<&SharedSnapshot>,
        digest: &Digest,
    ) -> PinCheck {
        #[cfg(not(feature = "redis"))]
        let _ = shared;
        let pinned = match self {
            #[cfg(feature = "redis")]
            Self::Shared(_) => match shared {
                Some(SharedSnapshot::Loaded(pins)) => match pins.get(tool) {
                    None => return PinCheck::Claim,
                    Some(pin) => *pin,
                },
                Some(SharedSnapshot::Unavailable) | None => return PinCheck::Unavailable,
            },
            Self::Learned => match learned {
                None => return PinCheck::Learn,
                Some(pin) => pin,
            },
            Self::File { pins, .. } => match pins.current().get(upstream, tool) {
                None => return PinCheck::Unpinned,
                Some(pin) => *pin.digest(),
            },
        };
        if pinned == *digest {
            PinCheck::Same
        } else {
            PinCheck::Changed
        }
    }

    /// Whether a changed definition, kept by `action: Allow`, is pinned in its place (only
    /// in this layer's memory: a shared pin is never replaced from traffic).
    pub(crate) fn repins(&self) -> bool {
        matches!(self, Self::Learned)
    }

    /// The Redis store, when pins are shared.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(&self) -> Option<&Arc<crate::shared_pins::RedisPins>> {
        match self {
            Self::Shared(pins) => Some(pins),
            _ => None,
        }
    }
}
