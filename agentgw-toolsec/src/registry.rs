//! What the layer remembers about the tools each upstream offered: pins, whether a tool is
//! exposed or withheld, its compiled input schema.
//!
//! Bounded: at most `max_tools` tools over all upstreams (beyond it new tools are withheld when
//! pinning is on, so that no tool goes unpinned), and bounded caches of compiled schemas and of
//! validation verdicts, keyed by digest.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::digest::Digest;
use crate::schema::InputSchema;
use crate::spoof::KnownName;
use crate::validate::Broken;

/// Entries kept in each digest-keyed cache before it is cleared.
const CACHE_CAPACITY: usize = 4096;

/// What is known about one tool of one upstream.
#[derive(Debug, Clone)]
pub(crate) struct ToolRecord {
    /// The digest of the first definition exposed (when pinning is on).
    pub(crate) pin: Option<Digest>,
    pub(crate) status: ToolStatus,
    pub(crate) name: KnownName,
}

/// Whether clients may call a tool.
#[derive(Debug, Clone)]
pub(crate) enum ToolStatus {
    /// Listed to clients; calls are validated against the schema, if any.
    Exposed { schema: Option<InputSchema> },
    /// Removed from lists by a rule; calls are refused.
    Withheld { rule: Arc<str> },
}

/// The registry's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) upstreams: HashMap<Arc<str>, HashMap<String, ToolRecord>>,
    pub(crate) total: usize,
    schemas: HashMap<Digest, Result<InputSchema, Arc<str>>>,
    verdicts: HashMap<Digest, Option<Broken>>,
}

impl State {
    /// The record of `name` at `upstream`.
    pub(crate) fn tool(&self, upstream: &str, name: &str) -> Option<&ToolRecord> {
        self.upstreams.get(upstream)?.get(name)
    }

    /// Exposed tools of every upstream but `upstream`.
    pub(crate) fn names_elsewhere<'a>(
        &'a self,
        upstream: &'a str,
    ) -> impl Iterator<Item = &'a KnownName> + 'a {
        self.upstreams
            .iter()
            .filter(move |(other, _)| other.as_ref() != upstream)
            .flat_map(|(_, tools)| tools.values())
            .filter(|record| matches!(record.status, ToolStatus::Exposed { .. }))
            .map(|record| &record.name)
    }

    /// Whether any upstream listed `name` (exposed or withheld).
    pub(crate) fn is_known(&self, name: &str) -> bool {
        self.upstreams
            .values()
            .any(|tools| tools.contains_key(name))
    }

    /// A cached verdict of the static definition checks.
    pub(crate) fn verdict(&self, digest: &Digest) -> Option<Option<Broken>> {
        self.verdicts.get(digest).cloned()
    }

    /// A cached compiled schema.
    pub(crate) fn schema(&self, digest: &Digest) -> Option<Result<InputSchema, Arc<str>>> {
        self.schemas.get(digest).cloned()
    }
}

/// The shared registry of one layer.
#[derive(Debug)]
pub(crate) struct Registry {
    state: RwLock<State>,
    max_tools: usize,
}

/// One change to commit after a `tools/list` was processed.
#[derive(Debug)]
pub(crate) struct Update {
    pub(crate) name: String,
    pub(crate) record: ToolRecord,
}

impl Registry {
    pub(crate) fn new(max_tools: usize) -> Self {
        Self {
            state: RwLock::new(State::default()),
            max_tools,
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `count` more tools fit.
    pub(crate) fn has_room(&self, state: &State, count: usize) -> bool {
        state.total + count <= self.max_tools
    }

    /// Commits the outcome of one `tools/list`, plus newly computed cache entries.
    pub(crate) fn commit(
        &self,
        upstream: &Arc<str>,
        updates: Vec<Update>,
        verdicts: Vec<(Digest, Option<Broken>)>,
        schemas: Vec<(Digest, Result<InputSchema, Arc<str>>)>,
    ) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        let mut added = 0;
        let tools = state.upstreams.entry(upstream.clone()).or_default();
        for Update { name, record } in updates {
            match tools.get_mut(&name) {
                Some(existing) => *existing = record,
                None if state.total + added < self.max_tools => {
                    tools.insert(name, record);
                    added += 1;
                }
                None => {}
            }
        }
        state.total += added;
        if state.verdicts.len() + verdicts.len() > CACHE_CAPACITY {
            state.verdicts.clear();
        }
        state.verdicts.extend(verdicts);
        if state.schemas.len() + schemas.len() > CACHE_CAPACITY {
            state.schemas.clear();
        }
        state.schemas.extend(schemas);
    }

    /// Withholds `name` at `upstream` under `rule` if it is still known with the pin `pin`;
    /// returns whether it was.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn withhold_pinned(
        &self,
        upstream: &str,
        name: &str,
        pin: &Digest,
        rule: &str,
    ) -> bool {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match state
            .upstreams
            .get_mut(upstream)
            .and_then(|tools| tools.get_mut(name))
        {
            Some(record) if record.pin.as_ref() == Some(pin) => {
                record.status = ToolStatus::Withheld { rule: rule.into() };
                true
            }
            _ => false,
        }
    }

    /// Forgets everything (pins included), e.g. after an operator reviewed a changed tool.
    pub(crate) fn clear(&self) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = State::default();
    }

    /// Forgets one upstream's tools.
    pub(crate) fn clear_upstream(&self, upstream: &str) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(tools) = state.upstreams.remove(upstream) {
            state.total -= tools.len();
        }
    }
}
