//! The state of what a layer depends on at run time (a JWKS endpoint, an authorization
//! service), for readiness probes and health pages.
//!
//! Layers with such dependencies expose `dependencies() -> Vec<Dependency>`; a gateway lists
//! them per route (the example gateway's `/healthz?verbose`) and decides which ones its
//! readiness requires. A [`DependencyCell`] is the lock-free cell a layer updates on its request
//! path: one relaxed load per request, a store only when the state changes.
//!
//! ```
//! use agentgw_core::health::{Dependency, DependencyCell, DependencyState};
//!
//! let cell = DependencyCell::default();
//! assert_eq!(cell.get(), DependencyState::Pending);
//! cell.set(DependencyState::Up);
//! let dependency = Dependency::new("ext_authz", "http://127.0.0.1:9000", cell.get());
//! assert!(dependency.state.is_up());
//! assert_eq!(
//!     serde_json::to_value(&dependency).unwrap(),
//!     serde_json::json!({"kind": "ext_authz", "target": "http://127.0.0.1:9000", "state": "up"})
//! );
//! ```

use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

/// Whether a dependency can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DependencyState {
    /// Not contacted yet (start-up, or no request needed it so far).
    Pending,
    /// The last contact succeeded (or what it gave is still being served, like cached keys).
    Up,
    /// The last contact failed and nothing usable is left.
    Down,
}

impl DependencyState {
    /// Whether requests that need the dependency can be served.
    pub fn is_up(self) -> bool {
        self == DependencyState::Up
    }

    /// Its name in reports: `pending`, `up`, `down` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyState::Pending => "pending",
            DependencyState::Up => "up",
            DependencyState::Down => "down",
        }
    }
}

/// One dependency of a layer and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Dependency {
    /// What it is: `jwks`, `ext_authz`.
    pub kind: &'static str,
    /// Where it is: a URL, without credentials.
    pub target: String,
    /// Its state now.
    pub state: DependencyState,
}

impl Dependency {
    /// A dependency of `kind` at `target` in `state`.
    pub fn new(kind: &'static str, target: impl Into<String>, state: DependencyState) -> Self {
        Dependency {
            kind,
            target: target.into(),
            state,
        }
    }
}

/// A [`DependencyState`] shared between a layer's request path and its health reports.
#[derive(Debug, Default)]
pub struct DependencyCell(AtomicU8);

impl DependencyCell {
    /// The state now.
    pub fn get(&self) -> DependencyState {
        match self.0.load(Ordering::Relaxed) {
            1 => DependencyState::Up,
            2 => DependencyState::Down,
            _ => DependencyState::Pending,
        }
    }

    /// Records `state`; writes only when it changed (no cache-line traffic per request).
    pub fn set(&self, state: DependencyState) {
        let value = match state {
            DependencyState::Pending => 0,
            DependencyState::Up => 1,
            DependencyState::Down => 2,
        };
        if self.0.load(Ordering::Relaxed) != value {
            self.0.store(value, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_goes_from_pending_to_what_was_last_set() {
        let cell = DependencyCell::default();
        assert_eq!(cell.get(), DependencyState::Pending);
        cell.set(DependencyState::Down);
        assert_eq!(cell.get(), DependencyState::Down);
        assert!(!cell.get().is_up());
        assert_eq!(
            serde_json::to_value(cell.get()).unwrap(),
            cell.get().as_str()
        );
        cell.set(DependencyState::Up);
        assert_eq!(cell.get(), DependencyState::Up);
    }
}
